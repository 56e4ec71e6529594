"""Run a generator on a background thread, a few items ahead of its consumer.

The encoder decodes and resizes the next batch while the model runs on the current one (PIL
and numpy release the GIL). Hand-written because neither the standard library nor torch's
DataLoader (which wants a dataset and worker processes) iterates one generator ahead in a thread.
"""
import collections
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar('T')
R = TypeVar('R')

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order, produced up to ``depth`` ahead on another thread. An exception
    of the producer is raised here; a consumer that stops early stops the producer."""
    q: 'queue.Queue' = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as e:  # handed to the consumer, raised on its thread
            put(_Failed(e))
            return
        put(_DONE)

    thread = threading.Thread(target=produce, name='loupe-prefetch', daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def ordered_map(fn: Callable[[T], R], items: Iterable[T], pool: Optional[ThreadPoolExecutor],
                window: int = 8) -> Iterator[R]:
    """``map(fn, items)`` on ``pool``'s threads, in order, at most ``window`` tasks ahead
    (``ThreadPoolExecutor.map`` would submit every item at once); without a pool, in line."""
    if pool is None:
        yield from map(fn, items)
        return
    pending: collections.deque = collections.deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
