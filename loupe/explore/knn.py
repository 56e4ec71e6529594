"""k nearest neighbours of every vector of a set, through an HNSW graph built for the request.

Semantic duplicates need the kNN of every whole-image vector. The chunk index's graph holds
every chunk, so each hit there costs a record read to learn its kind; a graph of the
whole-image vectors alone (usearch, the library the chunk index uses, built multi-threaded from
the vectors already in memory) answers all queries in one batched call instead.
"""
from typing import Tuple

import numpy as np
from usearch.index import Index

CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 16, 128, 128


def knn_all(vectors: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """(neighbours (n, k) row indices, -1 where none; cosine similarities (n, k)), each row's
    own vector left out."""
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n < 2:
        return np.full((n, 0), -1, np.int64), np.zeros((n, 0), np.float32)
    k = min(k, n - 1)
    index = Index(ndim=vectors.shape[1], metric='cos', dtype='f16', connectivity=CONNECTIVITY,
                  expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)
    index.add(np.arange(n, dtype=np.uint64), vectors, threads=0)
    found = index.search(vectors, k + 1, threads=0)
    keys = np.asarray(found.keys, dtype=np.int64).reshape(n, -1)
    similarity = 1.0 - np.asarray(found.distances, dtype=np.float32).reshape(n, -1)
    counts = np.asarray(found.counts).reshape(n)
    valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
    keys = np.where(valid & (keys != np.arange(n)[:, None]), keys, -1)
    order = np.argsort(keys == -1, axis=1, kind='stable')[:, :k]  # drop self, keep order
    return np.take_along_axis(keys, order, 1), np.take_along_axis(similarity, order, 1)
