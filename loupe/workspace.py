"""One process owns a workspace: an OS file lock, and a record of who holds it and where it listens.

The lock is ``fcntl.flock`` on ``<workspace>/loupe.lock``: the kernel drops it when the owner
dies, however it dies, so a crash never leaves a stale lock. Beside it ``owner.json`` records
the owner's pid, start time, command and, for a service, its address; it is only believed while
the lock is held, so a stale file left by a killed owner is ignored.

The CLI uses the record to send its commands to the running service instead of starting a
second writer; anything else that tries to open the workspace for writing gets
``WorkspaceBusyError`` naming the owner.
"""
import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from loupe.errors import LoupeError

LOCK_NAME = 'loupe.lock'
OWNER_NAME = 'owner.json'
USED_NAME = 'last-used'  # touched by every CLI command a service answers (its idle clock)


class WorkspaceBusyError(LoupeError):
    """Another process owns the workspace."""


@dataclass
class Owner:
    pid: int
    started: float  # time.time() when it took the workspace
    command: str
    host: Optional[str] = None  # a service: where its gRPC gateway listens
    port: Optional[int] = None
    http_port: Optional[int] = None
    extra: dict = field(default_factory=dict)

    @property
    def address(self) -> Optional[str]:
        return f'{self.host}:{self.port}' if self.host and self.port else None

    def describe(self) -> str:
        since = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.started))
        where = f', serving on {self.address}' if self.address else ''
        return f'{self.command} (pid {self.pid}, since {since}{where})'


class WorkspaceLock:
    """The exclusive hold on a workspace; ``release`` (or the process's death) gives it up."""

    def __init__(self, workspace: Path, command: str):
        self.workspace = Path(workspace)
        self.workspace.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.workspace / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                           0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            owner = read_owner_record(self.workspace)
            who = owner.describe() if owner else 'another process'
            hint = (f'; its commands reach it with --server {owner.address}'
                    if owner and owner.address else '; wait for it to finish or stop it')
            raise WorkspaceBusyError(
                f'workspace {self.workspace} is in use by {who}{hint}') from None
        self.owner = Owner(pid=os.getpid(), started=time.time(), command=command)
        self._write()

    def serving(self, host: str, port: int, http_port: Optional[int] = None) -> None:
        """Record the service's address, so the CLI finds it through the workspace."""
        self.owner.host, self.owner.port, self.owner.http_port = host, port, http_port
        self._write()

    def _write(self) -> None:
        path = self.workspace / OWNER_NAME
        tmp = path.with_suffix('.tmp')
        tmp.write_text(json.dumps(asdict(self.owner)))
        os.replace(tmp, path)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            (self.workspace / OWNER_NAME).unlink()
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> 'WorkspaceLock':
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def read_owner_record(workspace: Path) -> Optional[Owner]:
    try:
        return Owner(**json.loads((Path(workspace) / OWNER_NAME).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def is_locked(workspace: Path) -> bool:
    """Whether some process holds the workspace now (tried without taking it)."""
    path = Path(workspace) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock taken by the test, if it was taken
    return False


def owner(workspace: Path) -> Optional[Owner]:
    """The live owner of the workspace, or None when nobody holds it (a stale record is ignored)."""
    if not is_locked(workspace):
        return None
    for _ in range(20):  # the owner writes its record just after taking the lock
        record = read_owner_record(workspace)
        if record is not None:
            return record
        time.sleep(0.05)
    return Owner(pid=0, started=time.time(), command='an unknown process')


def service_address(workspace: Path) -> Optional[str]:
    """``host:port`` of the service that owns the workspace, if one does and it listens."""
    found = owner(workspace)
    if found is None or not found.address:
        return None
    try:
        with socket.create_connection((found.host, found.port), timeout=1):
            return found.address
    except OSError:
        return None


def wait_for_service(workspace: Path, timeout: float) -> Optional[str]:
    """The address of the service starting on ``workspace`` once it listens; None if its owner
    goes away or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and is_locked(workspace):
        address = service_address(workspace)
        if address:
            return address
        time.sleep(0.2)
    return None


def touch_used(workspace: Path) -> None:
    with contextlib.suppress(OSError):
        (Path(workspace) / USED_NAME).touch()


def idle_seconds(workspace: Path, since: float) -> float:
    """Seconds since a client last used the service (or since ``since``, if none has)."""
    try:
        last = max((Path(workspace) / USED_NAME).stat().st_mtime, since)
    except OSError:
        last = since
    return time.time() - last


def command_line() -> str:
    return 'loupe ' + ' '.join(sys.argv[1:]) if Path(sys.argv[0]).name in (
        'loupe', 'cli.py', '__main__.py') else Path(sys.argv[0]).name or 'python'


@contextlib.contextmanager
def held(workspace: Path, command: Optional[str] = None) -> Iterator[WorkspaceLock]:
    lock = WorkspaceLock(workspace, command or command_line())
    try:
        yield lock
    finally:
        lock.release()
