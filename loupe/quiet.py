"""Quiet command-line output: what the user asked for on stdout/stderr, everything else in a log.

An in-process flow starts Jina's gateway and executors as child processes that inherit this
process's stdout and stderr; Jina, gRPC's C core and Python warnings all write there. Without
``-v`` the file descriptors 1 and 2 point at a log file in the workspace while the flow runs,
and this process's own ``sys.stdout`` / ``sys.stderr`` keep writing to the terminal.
"""
import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator, Optional

# Set before jina, grpc or transformers are imported (child processes inherit them).
QUIET_ENV = {
    'JINA_LOG_LEVEL': 'ERROR',
    'GRPC_VERBOSITY': 'NONE',  # "too_many_pings" and other C-core lines
    'TRANSFORMERS_VERBOSITY': 'error',
    'HF_HUB_DISABLE_PROGRESS_BARS': '1',
    # Jina says so on import whenever JINA_MP_START_METHOD is set (the tests set it).
    'PYTHONWARNINGS': 'ignore:pkg_resources is deprecated,'
                      'ignore:multiprocessing start method is set to',
}
VERBOSE_ENV = {'TRANSFORMERS_VERBOSITY': 'error', 'HF_HUB_DISABLE_PROGRESS_BARS': '1'}
LOG_NAME = 'loupe.log'


def configure(verbose: bool) -> None:
    import warnings

    for name, value in (VERBOSE_ENV if verbose else QUIET_ENV).items():
        os.environ.setdefault(name, value)
    if not verbose:
        for message in QUIET_ENV['PYTHONWARNINGS'].split(','):
            warnings.filterwarnings('ignore', message=message.split(':', 1)[1])


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Logs (ours and the child processes') go to stderr: stdout is for results."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def logs_to_file(log: Optional[Path]) -> Iterator[Optional[Path]]:
    """Descriptors 1 and 2 to ``log`` (``None``: to stderr) while a flow runs.

    ``sys.stderr`` stays on the terminal (the progress bar); ``sys.stdout`` follows descriptor 1
    into the log, as Jina prints its banner there: commands print their results afterwards.
    """
    if log is None:
        with stdout_to_stderr():
            yield None
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    old_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved[1]), 'w', buffering=1, encoding=old_stderr.encoding,
                           errors='replace')
    with open(log, 'ab') as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
    try:
        yield log
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = old_stderr
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def errors_in(log: Path, limit: int = 6) -> list:
    """The last few error lines of a log: what to show when a quiet start fails."""
    try:
        lines = log.read_text(errors='replace').splitlines()
    except OSError:
        return []
    keys = ('Error', 'error:', 'ERROR', 'No such', 'not found', 'Exception')
    found = [line.strip() for line in lines if any(k in line for k in keys)]
    return list(dict.fromkeys(found))[-limit:]
