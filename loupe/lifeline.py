"""A service process that ends with the process that started it, whatever ended that one.

``loupe serve`` runs the flow in a child process, in a process group of its own with every
process Jina starts for it (the gateway and the executors). The parent ends that group when
the child stops; these helpers cover the parent ending first (SIGKILL, a closed terminal):
the kernel tells the child (Linux's parent-death signal; elsewhere a thread watches the parent
id), the child closes the flow, and if closing takes too long it kills its whole group.
"""
import ctypes
import os
import signal
import threading
import time
from typing import Iterable

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_WATCH_INTERVAL = 0.5  # seconds between looks at the parent where prctl is missing


def die_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """Have ``signum`` sent to this process when ``parent_pid`` (its parent) ends."""
    if not _parent_death_signal(signum):
        threading.Thread(target=_watch, args=(parent_pid, signum), daemon=True,
                         name='loupe-parent-watch').start()
    if os.getppid() != parent_pid:  # it ended before the signal was asked for
        os.kill(os.getpid(), signum)


def _parent_death_signal(signum: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def _watch(parent_pid: int, signum: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_WATCH_INTERVAL)
    os.kill(os.getpid(), signum)


def on_signals(signums: Iterable[int], event: threading.Event) -> None:
    """Set ``event`` when any of ``signums`` arrives (the main thread then closes in order)."""
    for signum in signums:
        signal.signal(signum, lambda *_: event.set())


def kill_group_after(event: threading.Event, seconds: float, group: int = 0) -> None:
    """Once ``event`` is set, give an orderly close ``seconds``, then SIGKILL the process group
    ``group`` (0: this process's own)."""
    def deadline():
        event.wait()
        time.sleep(seconds)
        try:
            os.killpg(group or os.getpgrp(), signal.SIGKILL)
        except ProcessLookupError:  # it ended in time
            pass

    threading.Thread(target=deadline, daemon=True, name='loupe-close-deadline').start()
