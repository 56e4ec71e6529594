"""Model work on one thread per process.

torch's CPU parallelism (OpenMP) keeps a team of worker threads for each thread that calls
into it. Jina runs each request of a sync endpoint on whichever thread of its pool is free, so
successive requests start new teams while the last team's threads still spin: on a 2-core
machine 3-4 busy threads, and a text query took up to 42 ms to encode in a flow instead of
28 ms (bench/query_latency.py). Executors hand their model calls to ``run`` instead.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, TypeVar

T = TypeVar('T')

_lock = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None
_owner_pid: Optional[int] = None  # a forked child needs a thread of its own
_on_model_thread = threading.local()


def _mark() -> None:
    _on_model_thread.active = True


def run(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` on this process's model thread: its result, or its exception."""
    global _pool, _owner_pid
    if getattr(_on_model_thread, 'active', False):
        return fn(*args, **kwargs)  # already there (a nested call): waiting would deadlock
    with _lock:
        if _pool is None or _owner_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix='loupe-model',
                                       initializer=_mark)
            _owner_pid = os.getpid()
    return _pool.submit(fn, *args, **kwargs).result()
