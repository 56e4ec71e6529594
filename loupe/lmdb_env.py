"""An LMDB environment whose map grows when full, and that follows growth made by other processes."""
import threading
from pathlib import Path
from typing import Callable, TypeVar

import lmdb

T = TypeVar('T')


class GrowingEnv:
    """Wraps ``lmdb.Environment``: ``write`` retries with a doubled map instead of failing."""

    def __init__(self, path, dbs: tuple = (), map_size: int = 64 << 20, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if not readonly:
            self.path.mkdir(parents=True, exist_ok=True)
        elif not (self.path / 'data.mdb').exists():
            raise FileNotFoundError(f'no LMDB store at {self.path}')
        self.env = lmdb.open(str(self.path), map_size=map_size, max_dbs=max(len(dbs), 1),
                             readonly=readonly, subdir=True, lock=True)
        self.dbs = {name: self.env.open_db(name.encode(), create=not readonly) for name in dbs}
        self._lock = threading.Lock()

    def write(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``fn`` in one write transaction; on a full map, double it and run again."""
        with self._lock:
            while True:
                try:
                    with self.env.begin(write=True) as txn:
                        return fn(txn)
                except lmdb.MapFullError:
                    self.env.set_mapsize(self.env.info()['map_size'] * 2)

    def read(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        try:
            with self.env.begin() as txn:
                return fn(txn)
        except lmdb.MapResizedError:
            # Another process grew the map: adopt its size and read again.
            self.env.set_mapsize(0)
            with self.env.begin() as txn:
                return fn(txn)

    def close(self) -> None:
        self.env.close()
