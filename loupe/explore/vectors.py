"""Whole-image vectors and their nearest neighbours, as the explore features need them.

``WholeVectors`` is the small interface explore codes against; ``ChunkIndexVectors`` serves it
from the chunk index (``ChunkIndex.whole_vectors`` / ``search(kinds=('whole',))``): the vectors
stored at index time, never recomputed. All of them are kept in memory between writes (the
executor calls ``invalidate`` after each), so a request does not re-read the store.
"""
import threading
from typing import Iterable, List, Optional, Protocol, Tuple

import numpy as np

from loupe.ann import ChunkIndex
from loupe.ann.search import accepts as _accepts
from loupe.constants import KIND_WHOLE


class WholeVectors(Protocol):
    def whole_vectors(self, ids: Optional[Iterable[str]] = None,
                      filter: Optional[dict] = None) -> Tuple[List[str], np.ndarray]:
        """(ids, float32 rows, L2-normalised) of the given images (all when None) that exist
        and pass ``filter``."""

    def nearest_whole(self, queries: np.ndarray, k: int,
                      filter: Optional[dict] = None) -> List[List[Tuple[str, float]]]:
        """Per query row, up to ``k`` (image id, cosine similarity) by whole-image vector,
        through the ANN, best first."""


class ChunkIndexVectors:
    """``WholeVectors`` over a ``loupe.ann.ChunkIndex``."""

    def __init__(self, index: ChunkIndex):
        self.index = index
        self._cache: Optional[Tuple[List[str], np.ndarray, dict]] = None
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """The index changed: read the vectors again when next asked."""
        with self._lock:
            self._cache = None

    def _all(self) -> Tuple[List[str], np.ndarray, dict]:
        with self._lock:
            if self._cache is None:
                ids, vectors = self.index.whole_vectors()
                self._cache = (ids, vectors, {id_: i for i, id_ in enumerate(ids)})
            return self._cache

    def _tags(self, ids: List[str]) -> List[dict]:
        return self.index.parent_tags(ids)

    def whole_vectors(self, ids=None, filter=None):
        all_ids, matrix, position = self._all()
        rows = (np.arange(len(all_ids)) if ids is None else
                np.array([position[i] for i in ids if i in position], np.int64))
        if filter and len(rows):
            tags = self._tags([all_ids[r] for r in rows.tolist()])
            rows = rows[[_accepts(t, filter) for t in tags]]
        return [all_ids[r] for r in rows.tolist()], matrix[rows]

    def nearest_whole(self, queries, k, filter=None):
        hits = self.index.search(queries, k, filter, kinds=(KIND_WHOLE,))
        return [[(hit.parent_id, hit.similarity) for hit in row] for row in hits]
