"""What the endpoints do, on plain data: the executors pass their stores and the request's
parameters, and turn the answers into documents.

Vector side (the chunk indexer): ``recommend``, ``semantic_edges``, ``project``.
Record side (root storage): ``duplicate_groups`` (exact and perceptual pairs, plus the
semantic edges the indexer found, grouped).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from loupe.ann.search import accepts as passes_filter  # noqa: F401 (tags filters, as search)
from loupe.errors import InvalidRequestError
from loupe.explore import groups as G
from loupe.explore.hamming import pairs_within
from loupe.explore.recommend import Ranking, liked_direction, normalise
from loupe.explore.recommend import recommend as rank_by_votes
from loupe.explore.vectors import WholeVectors

EMPTY = 'the collection is empty: index some images first'
NEGATIVE_POOL = 5000  # unvoted images the likes-only SVM may draw its negatives from


def _known(view: WholeVectors, ids: List[str], what: str) -> np.ndarray:
    found, vectors = view.whole_vectors(ids)
    missing = [i for i in ids if i not in set(found)]
    if missing:
        raise InvalidRequestError(f'/recommend: unknown image ids in {what}: {", ".join(missing)}')
    order = {id_: i for i, id_ in enumerate(found)}
    return vectors[[order[i] for i in ids]] if ids else vectors


def recommend(view: WholeVectors, like: List[str], dislike: List[str], limit: int, ask: int,
              candidates: int, exhaustive_max: int, filter: Optional[dict]) -> Ranking:
    """Rank the collection by the votes; above ``exhaustive_max`` images only an ANN candidate
    set around the likes (about ``candidates`` images) is scored."""
    both = set(like) & set(dislike)
    if both:
        raise InvalidRequestError(f'/recommend: ids both liked and disliked: {", ".join(sorted(both))}')
    liked, disliked = _known(view, like, 'like'), _known(view, dislike, 'dislike')
    ids, vectors = view.whole_vectors(filter=filter)
    if not ids:
        raise InvalidRequestError(EMPTY if not filter else '/recommend: no image passes the filter')
    voted = set(like) | set(dislike)
    unvoted = np.array([i for i, id_ in enumerate(ids) if id_ not in voted], np.int64)
    rng = np.random.default_rng(0)
    pool = vectors[rng.choice(unvoted, size=min(NEGATIVE_POOL, len(unvoted)), replace=False)]
    if len(ids) > exhaustive_max:
        queries = np.concatenate([liked_direction(liked)[None], normalise(liked)])
        per_query = max(limit, candidates // len(queries))
        found = {i for row in view.nearest_whole(queries, per_query, filter) for i, _ in row}
        ids, vectors = view.whole_vectors(sorted(found), filter)
    return rank_by_votes(ids, vectors, like, dislike, limit, ask, liked_vectors=liked,
                         disliked_vectors=disliked, pool=pool)


def semantic_edges(view: WholeVectors, threshold: float, neighbours: int,
                   filter: Optional[dict]) -> List[Tuple[str, str, float]]:
    """(a, b, cosine) with a < b for every image and each of its ``neighbours`` nearest
    whole-image vectors (HNSW, see loupe.explore.knn) at or above ``threshold``."""
    from loupe.explore.knn import knn_all

    ids, vectors = view.whole_vectors(filter=filter)
    keys, similarity = knn_all(vectors, neighbours)
    rows, cols = np.nonzero((keys >= 0) & (similarity >= threshold))
    edges: Dict[Tuple[str, str], float] = {}
    for row, other, s in zip(rows.tolist(), keys[rows, cols].tolist(),
                             similarity[rows, cols].tolist()):
        a, b = ids[row], ids[other]
        key = (a, b) if a < b else (b, a)
        edges[key] = max(min(1.0, s), edges.get(key, -1.0))
    return [(a, b, s) for (a, b), s in edges.items()]


@dataclass
class Projection:
    ids: List[str]
    xy: np.ndarray  # (n, 2) in [0, 1]
    similarity: Optional[np.ndarray]  # to the query, when one was given
    total: int  # images that passed the filter, before sampling


def project(view: WholeVectors, sample: int, seed: int, projection: str,
            filter: Optional[dict], query: Optional[np.ndarray] = None) -> Projection:
    """A uniform random sample (seeded) of at most ``sample`` images, projected to 2-D."""
    from loupe.explore.mapping import to_2d

    ids, vectors = view.whole_vectors(filter=filter)
    if not ids:
        raise InvalidRequestError(EMPTY if not filter else '/map: no image passes the filter')
    total = len(ids)
    if total > sample:
        rows = np.sort(np.random.default_rng(seed).choice(total, size=sample, replace=False))
        ids, vectors = [ids[i] for i in rows.tolist()], vectors[rows]
    similarity = None
    if query is not None:
        similarity = normalise(vectors) @ normalise(np.asarray(query, np.float32).ravel())
    return Projection(ids, to_2d(vectors, projection, seed), similarity, total)


@dataclass
class Item:
    """What grouping needs of a stored image."""

    id: str
    paths: List[str]  # every path or URL, in the order first seen
    width: int
    height: int
    added: float
    phash: Optional[str]


def duplicate_groups(items: Sequence[Item], methods: Sequence[str], perceptual_threshold: int,
                     semantic: Sequence[Tuple[str, str, float]]) -> List[G.Group]:
    """Groups of ``items`` (indices into it): exact (one image under several paths),
    perceptual (pHash within ``perceptual_threshold`` bits; similarity 1 - bits / 64) and
    the given semantic edges."""
    items = list(items)
    pairs = []
    if G.EXACT in methods:
        multi = np.array([i for i, item in enumerate(items) if len(item.paths) > 1], np.int64)
        pairs.append(G.Pairs(multi, multi, np.ones(len(multi), np.float32), G.EXACT))
    if G.PERCEPTUAL in methods:
        hashed = np.array([i for i, item in enumerate(items) if item.phash], np.int64)
        if len(hashed) > 1:
            values = np.array([int(items[i].phash, 16) for i in hashed.tolist()], np.uint64)
            left, right, bits = pairs_within(values, perceptual_threshold)
            pairs.append(G.Pairs(hashed[left], hashed[right],
                                 (1 - bits / 64).astype(np.float32), G.PERCEPTUAL))
    if G.SEMANTIC in methods and semantic:
        position = {item.id: i for i, item in enumerate(items)}
        kept = [(position[a], position[b], s) for a, b, s in semantic
                if a in position and b in position]
        if kept:
            left, right, similarity = (np.array(c) for c in zip(*kept))
            pairs.append(G.Pairs(left.astype(np.int64), right.astype(np.int64),
                                 similarity.astype(np.float32), G.SEMANTIC))
    order = G.keep_order([i.width for i in items], [i.height for i in items],
                         [i.added for i in items], [i.paths[0] if i.paths else '' for i in items])
    return G.group_pairs(len(items), pairs, order)
