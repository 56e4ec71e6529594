"""The usearch HNSW graph of the chunk vectors and the life of its file ``chunks.usearch``.

The file is a cache of the LMDB records: loaded when the index opens, reconciled with the
records key by key, saved atomically (temporary file + rename) on ``save``/``close`` and every
``save_every`` added chunks. A save that fails (a full disk) leaves the previous file and no
temporary one, and stops nothing: the next open reconciles whatever file it finds.

Adding runs on a worker thread (usearch releases the GIL), so the next write's record work
overlaps the previous write's graph insertions; every other use of the graph waits for the
pending additions first, so a search always sees every acknowledged write.
"""
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np
from usearch.index import Index

from loupe.ann.settings import PRECISIONS

logger = logging.getLogger(__name__)

GRAPH_FILE = 'chunks.usearch'
_ADD_BATCH = 65536
# One query at a time gains nothing from usearch's thread pool and pays its dispatch (~20-40 us).
_THREADED_BATCH = 8


class Graph:
    def __init__(self, folder: Path, ndim: int, settings: dict):
        self.file = Path(folder) / GRAPH_FILE
        self.ndim, self.settings = ndim, settings
        self._index = self._new()
        self._adder = ThreadPoolExecutor(max_workers=1, thread_name_prefix='graph-add')
        self._pending: Optional[Future] = None
        self.failed: Optional[BaseException] = None  # an addition that failed (see wait)

    @property
    def index(self) -> Index:
        """The usearch index, once every pending addition is in."""
        self.wait()
        return self._index

    def wait(self) -> None:
        """Wait for the pending additions. One that failed is logged and kept in ``failed``
        (the owner repairs the graph from the record)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                pending.result()
            except Exception as e:  # noqa: BLE001 - kept for the owner to repair
                logger.error('adding to the graph %s failed: %s', self.file, e)
                self.failed = e

    def close(self) -> None:
        self.wait()
        self._adder.shutdown()

    def _new(self) -> Index:
        s = self.settings
        return Index(ndim=self.ndim, metric='cos', dtype=PRECISIONS[s['precision']],
                     connectivity=s['connectivity'], expansion_add=s['expansion_add'],
                     expansion_search=s['expansion_search'])

    def __len__(self) -> int:
        return len(self.index)

    def load(self) -> bool:
        """Load the file; False (and an empty graph) when it is absent, unreadable or of
        another dimension."""
        if not self.file.exists():
            return False
        index = self.index
        try:
            index.load(str(self.file))
            if index.ndim == self.ndim:
                index.expansion_search = self.settings['expansion_search']
                return True
        except (RuntimeError, ValueError) as e:
            logger.warning('cannot load %s (%s); rebuilding it from LMDB', self.file, e)
        self._index = self._new()
        return False

    def save(self) -> bool:
        """Write the file atomically; False, with the old file kept, when that fails."""
        tmp = self.file.with_suffix('.tmp')
        try:
            self.index.save(str(tmp))
            os.replace(tmp, self.file)
            return True
        except (OSError, RuntimeError) as e:
            logger.warning('could not save the graph %s (%s: %s); it is rebuilt from LMDB at '
                           'the next start', self.file, type(e).__name__, e)
            return False
        finally:
            if tmp.exists():
                tmp.unlink()

    def keys(self) -> np.ndarray:
        return (np.asarray(self.index.keys, dtype=np.uint64) if len(self.index)
                else np.zeros(0, np.uint64))

    def reconcile(self, stored: np.ndarray,
                  vectors: Callable[[np.ndarray], np.ndarray]) -> Tuple[int, int]:
        """Make the graph hold exactly the ``stored`` keys: remove the others, add the missing
        ones with ``vectors(keys)``. Returns (added, removed).

        A direct comparison of key sets, so nothing written behind this process's back (another
        process, a crash before the save) can make it skip a repair.
        """
        present = self.keys()
        stale = np.setdiff1d(present, stored, assume_unique=True)
        missing = np.setdiff1d(stored, present, assume_unique=True)
        if len(stale):
            self.index.remove(stale)
        for start in range(0, len(missing), _ADD_BATCH):
            keys = missing[start:start + _ADD_BATCH]
            self.index.add(keys, vectors(keys))
        return len(missing), len(stale)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Queue the addition (in order, one at a time); see ``wait``."""
        if len(keys):
            self.wait()  # at most one batch in flight: bounded memory, errors seen early
            self._pending = self._adder.submit(self._index.add, keys, vectors)

    def remove(self, keys: np.ndarray) -> None:
        if len(keys):
            self.index.remove(keys)

    def search(self, queries: np.ndarray, count: int, exact: bool = False):
        """(keys, distances, counts) arrays of shape (queries, count)."""
        threads = 0 if len(queries) >= _THREADED_BATCH else 1
        found = self.index.search(queries, count, exact=exact, threads=threads)
        keys, distances = found.keys, found.distances
        if keys.ndim == 1:  # one query: usearch returns a flat Matches
            return keys[None], distances[None], np.asarray([len(keys)])
        return keys, distances, found.counts

    def vectors(self, keys: np.ndarray) -> Optional[np.ndarray]:
        """The graph's copy of the vectors (float32 out); None for an i8 graph (too coarse)."""
        if self.settings['precision'] == 'i8' or not len(keys):
            return None
        return np.asarray(self.index.get(keys, dtype=np.float32))

    @property
    def memory_usage(self) -> int:
        return int(self.index.memory_usage)
