"""Keeping a service for a workspace: start it in the background, find it, stop it, let it idle out.

A service owns its workspace (loupe.workspace) and records its address there; the CLI sends its
commands to it, so a search costs one text encoding instead of a flow start-up.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

from loupe import workspace as ws
from loupe.errors import LoupeError

SERVE_LOG = 'serve.log'
DEFAULT_IDLE_MINUTES = 30.0  # a background service ends after this long without a CLI command


def start_background(workspace: Path, serve_args: List[str], timeout: float = 600) -> ws.Owner:
    """Run ``loupe serve`` detached (its output in ``<workspace>/serve.log``); wait until it listens."""
    found = ws.owner(workspace)
    if found is not None:
        raise LoupeError(f'workspace {workspace} is already in use by {found.describe()}')
    workspace.mkdir(parents=True, exist_ok=True)
    log = workspace / SERVE_LOG
    with open(log, 'ab') as out, open(os.devnull, 'rb') as devnull:
        process = subprocess.Popen(
            [sys.executable, '-m', 'loupe.cli', '--workspace', str(workspace), 'serve',
             *serve_args], stdin=devnull, stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise LoupeError(f'the service did not start (exit {code}); see {log}')
        found = ws.owner(workspace)
        if found is not None and found.address and ws.service_address(workspace):
            return found
        time.sleep(0.2)
    process.terminate()
    raise LoupeError(f'the service did not start within {timeout:.0f} s; see {log}')


def stop(workspace: Path, timeout: float = 60) -> Optional[ws.Owner]:
    """End the service that owns ``workspace``; None when none does."""
    found = ws.owner(workspace)
    if found is None:
        return None
    if not found.address:
        raise LoupeError(f'workspace {workspace} is held by {found.describe()}, not by a '
                         'service; it ends when its command does')
    os.kill(found.pid, signal.SIGINT)  # the flow closes its executors (and saves) on SIGINT
    deadline = time.monotonic() + timeout
    while ws.is_locked(workspace) and time.monotonic() < deadline:
        time.sleep(0.2)
    if ws.is_locked(workspace):
        os.killpg(os.getpgid(found.pid), signal.SIGKILL)
    return found


def watch_idle(workspace: Path, minutes: float) -> None:
    """End this process (as Ctrl-C would) once no CLI command has used it for ``minutes``."""
    if not minutes or minutes <= 0:
        return
    started = time.time()

    def watch():
        while True:
            idle = ws.idle_seconds(workspace, started)
            if idle >= minutes * 60:
                print(f'loupe: no command for {minutes:g} min: stopping', file=sys.stderr,
                      flush=True)
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(min(30.0, max(1.0, minutes * 60 - idle)))

    threading.Thread(target=watch, daemon=True, name='idle-timeout').start()
