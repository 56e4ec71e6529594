"""Synthetic chunk vectors and the chunk indexes built from them, cached between runs.

The vectors imitate CLIP image embeddings (no real ones can be computed here at scale): unit
vectors in a shared cone (random pairs have cosine ~0.36), grouped in clusters of ~100 images,
each image's 10 chunks (whole image + 3x3 grid) scattered around the image's own vector in a
24-dimensional subspace of its cluster, plus a little isotropic noise (nearest neighbours have
cosine ~0.88). Query vectors for recall are chunks of held-out images of the same clusters.
"""
import json
import time
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple

import numpy as np

DIM = 512
CHUNKS_PER_PARENT = 10  # whole image + 3x3 grid, as the flows' default segmenter makes
IMAGE_SIZE = (640, 480)
_SEED = 0
_CLUSTER_IMAGES = 100  # images per cluster
_LOCAL_RANK = 24  # dimensions in which a cluster's images (and their chunks) vary
_BASES = 64  # distinct local subspaces, shared round-robin by the clusters
_CONE, _PARENT_VAR, _CHUNK_VAR, _ISO_VAR = 1.0, 0.5, 0.25, 0.05
_MARKER = 'bench-built.json'


class Chunk(NamedTuple):
    """What ChunkIndex reads of a chunk."""

    box: List[float]
    kind: str
    label: Optional[str]
    embedding: np.ndarray


def chunk_boxes(width: int = IMAGE_SIZE[0], height: int = IMAGE_SIZE[1]) -> List[Tuple[list, str]]:
    from loupe.segmentation.grid import grid_boxes

    cells = [(list(map(float, b)), 'grid') for b in grid_boxes(width, height, 3, 3)]
    return [([0.0, 0.0, float(width), float(height)], 'whole')] + cells


def parent_id(i: int) -> str:
    return f'img{i:08d}'


def generate(n_parents: int, seed: int = _SEED, dim: int = DIM) -> np.ndarray:
    """(n_parents * 10, dim) float32 unit vectors; chunk j of image i is row 10 * i + j."""
    rng = np.random.default_rng(seed)
    n_clusters = max(1, n_parents // _CLUSTER_IMAGES)
    mean = rng.standard_normal(dim)
    mean /= np.linalg.norm(mean)
    centers = rng.standard_normal((n_clusters, dim)) / np.sqrt(dim) + _CONE * mean
    bases = rng.standard_normal((_BASES, _LOCAL_RANK, dim)) / np.sqrt(dim * _LOCAL_RANK)
    cluster_of = rng.integers(0, n_clusters, n_parents)
    out = np.empty((n_parents * CHUNKS_PER_PARENT, dim), np.float32)
    block = 5000
    for start in range(0, n_parents, block):
        c = cluster_of[start:start + block]
        basis = bases[c % _BASES]
        image = centers[c] + np.sqrt(_PARENT_VAR) * np.einsum(
            'pr,prd->pd', rng.standard_normal((len(c), _LOCAL_RANK)), basis)
        chunks = (image[:, None, :] + np.sqrt(_CHUNK_VAR) * np.einsum(
            'pkr,prd->pkd', rng.standard_normal((len(c), CHUNKS_PER_PARENT, _LOCAL_RANK)), basis)
            + np.sqrt(_ISO_VAR / dim) * rng.standard_normal((len(c), CHUNKS_PER_PARENT, dim)))
        chunks = chunks.reshape(-1, dim)
        rows = slice(start * CHUNKS_PER_PARENT, (start + len(c)) * CHUNKS_PER_PARENT)
        out[rows] = chunks / np.linalg.norm(chunks, axis=1, keepdims=True)
    return out


def dataset(cache: Path, n_vectors: int, n_queries: int,
            dim: int = DIM) -> Tuple[np.ndarray, np.ndarray]:
    """(vectors, queries), cached as .npy: ``n_vectors`` index rows, then one chunk of each of
    ``n_queries`` held-out images as queries."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f'vectors-{n_vectors}-d{dim}-q{n_queries}.npy'
    n_parents = -(-n_vectors // CHUNKS_PER_PARENT)
    if not path.exists():
        data = generate(n_parents + n_queries, dim=dim)
        rows = np.concatenate([data[:n_vectors],
                               data[n_parents * CHUNKS_PER_PARENT::CHUNKS_PER_PARENT]])
        tmp = path.with_suffix('.tmp.npy')
        np.save(tmp, rows)
        tmp.rename(path)
    rows = np.load(path, mmap_mode='r')
    return rows[:n_vectors], np.ascontiguousarray(rows[n_vectors:])


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int,
                block: int = 100_000) -> np.ndarray:
    """(len(queries), k) row numbers of the most cosine-similar vectors, best first."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(vectors), block):
        sims = queries @ np.asarray(vectors[start:start + block]).T
        s = np.concatenate([best_s, sims], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(
            np.arange(start, start + sims.shape[1]), sims.shape)], axis=1)
        top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    order = np.argsort(-best_s, axis=1)
    return np.take_along_axis(best_i, order, 1)


def cached_top_k(cache: Path, vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    path = Path(cache) / f'exact-{len(vectors)}-d{vectors.shape[1]}-q{len(queries)}-k{k}.npy'
    if not path.exists():
        np.save(path, exact_top_k(vectors, queries, k))
    return np.load(path)


STRUCTURAL = ('precision', 'connectivity', 'expansion_add')


def index_name(vectors: np.ndarray, settings: dict) -> str:
    """Folder name of a cached index: size, dimension and structural settings."""
    return (f"{len(vectors)}x{vectors.shape[1]}-{settings['precision']}-"
            f"{settings['connectivity']}-{settings['expansion_add']}")


def build_chunk_index(path: Path, vectors: np.ndarray, settings: dict,
                      parents_per_write: int = 1000) -> dict:
    """A ChunkIndex at ``path`` holding ``vectors`` as images of 10 chunks; built once.

    Only the structural ``settings`` (precision, connectivity, expansion_add) make an index;
    ``expansion_search`` is chosen when it is opened.

    Written through ``upsert_many`` as the indexer executor writes (one LMDB transaction and one
    graph insert per batch of images); the graph is saved once at the end, not every 10k chunks.
    Returns what the build recorded (settings, size, seconds).
    """
    from loupe.ann import ChunkIndex

    path = Path(path)
    marker = path / _MARKER
    settings = {k: settings[k] for k in STRUCTURAL}
    wanted = {'vectors': len(vectors), 'dim': int(vectors.shape[1]), **settings}
    if marker.exists():
        built = json.loads(marker.read_text())
        if {k: built.get(k) for k in wanted} == wanted:
            return built
    if path.exists():
        import shutil

        shutil.rmtree(path)
    boxes = chunk_boxes()
    n_parents = len(vectors) // CHUNKS_PER_PARENT
    start = time.perf_counter()
    with ChunkIndex(path, save_every=None, **settings) as index:
        for first in range(0, n_parents, parents_per_write):
            block = np.asarray(vectors[first * CHUNKS_PER_PARENT:
                                       (first + parents_per_write) * CHUNKS_PER_PARENT])
            items = []
            for p in range(len(block) // CHUNKS_PER_PARENT):
                rows = block[p * CHUNKS_PER_PARENT:(p + 1) * CHUNKS_PER_PARENT]
                items.append((parent_id(first + p),
                              [Chunk(box, kind, None, row) for (box, kind), row in zip(boxes, rows)],
                              {'album': f'a{(first + p) % 10}'}))
            index.upsert_many(items)
        index.save()
    built = {**wanted, 'build_s': time.perf_counter() - start, 'built_at': time.time()}
    marker.write_text(json.dumps(built))
    return built


def row_of(parent: str, box: List[float]) -> int:
    """Row number in ``vectors`` of a hit (its parent id and box)."""
    j = _BOX_INDEX[tuple(round(v, 2) for v in box)]
    return int(parent[3:]) * CHUNKS_PER_PARENT + j


_BOX_INDEX = {tuple(round(v, 2) for v in box): j for j, (box, _) in enumerate(chunk_boxes())}
