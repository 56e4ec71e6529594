"""The ANN libraries loupe's chunk index is compared with (``bench/ann.py --peers``).

Each method builds an HNSW index of the same vectors with the same M (connectivity) and
efConstruction (expansion_add), in one process (all cores), and saves it; another process loads
it (resident memory read off around the load) and searches one query at a time, k = 10, for
each ef (expansion_search). Cosine similarity everywhere (the vectors are unit length, so inner
product for faiss and hnswlib). faiss-cpu and hnswlib are benchmark-only: not loupe
dependencies.

- ``loupe``: ``ChunkIndex`` (its precision, f16 by default), built through ``upsert_many`` as the
  indexer writes (LMDB records + graph), searched with ``ChunkIndex.search`` (hits with parent,
  box, kind);
- ``usearch``: the bare usearch graph of the same precision (``Index.add`` / ``Index.search``);
- ``faiss``: ``IndexHNSWFlat`` (float32, inner product);
- ``hnswlib``: ``hnswlib.Index`` (float32, ``ip``).
"""
import time
from pathlib import Path

import numpy as np

METHODS = ('loupe', 'usearch', 'faiss', 'hnswlib')


def build(method: str, vectors: np.ndarray, folder: Path, s: dict) -> float:
    """Build and save ``method``'s index of ``vectors`` into ``folder``; seconds to build
    (saving excluded). loupe is built by bench.data.build_chunk_index instead."""
    m, efc = s['connectivity'], s['expansion_add']
    n, dim = vectors.shape
    keys = np.arange(n, dtype=np.uint64)
    start = time.perf_counter()
    if method == 'usearch':
        from usearch.index import Index

        index = Index(ndim=dim, metric='cos', dtype=s['precision'], connectivity=m,
                      expansion_add=efc)
        index.add(keys, vectors)
        seconds = time.perf_counter() - start
        index.save(str(folder / 'usearch.bin'))
    elif method == 'faiss':
        import faiss

        index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = efc
        index.add(vectors)
        seconds = time.perf_counter() - start
        faiss.write_index(index, str(folder / 'faiss.bin'))
    elif method == 'hnswlib':
        import hnswlib

        index = hnswlib.Index(space='ip', dim=dim)
        index.init_index(max_elements=n, ef_construction=efc, M=m)
        index.add_items(vectors, keys.astype(np.int64), num_threads=-1)
        seconds = time.perf_counter() - start
        index.save_index(str(folder / 'hnswlib.bin'))
    else:
        raise ValueError(f'unknown method {method!r}; valid: {", ".join(METHODS)}')
    return seconds


def load(method: str, folder: Path, n: int, dim: int, s: dict):
    """``(search(query, k) -> row numbers, set_ef(ef))`` of the saved index."""
    if method == 'usearch':
        from usearch.index import Index

        index = Index(ndim=dim, metric='cos', dtype=s['precision'],
                      connectivity=s['connectivity'], expansion_add=s['expansion_add'])
        index.load(str(folder / 'usearch.bin'))

        def set_ef(ef):
            index.expansion_search = ef

        # threads=1: usearch's fastest for one query (no thread-pool dispatch), as loupe calls it
        return (lambda q, k: index.search(q, k, threads=1).keys), set_ef
    if method == 'faiss':
        import faiss

        index = faiss.read_index(str(folder / 'faiss.bin'))
        faiss.omp_set_num_threads(1)

        def set_ef(ef):
            index.hnsw.efSearch = ef

        return (lambda q, k: index.search(q[None], k)[1][0]), set_ef
    if method == 'hnswlib':
        import hnswlib

        index = hnswlib.Index(space='ip', dim=dim)
        index.load_index(str(folder / 'hnswlib.bin'), max_elements=n)
        return (lambda q, k: index.knn_query(q, k=k, num_threads=1)[0][0]), index.set_ef
    raise ValueError(f'unknown method {method!r}; valid: {", ".join(METHODS)}')
