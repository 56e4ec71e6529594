"""Parent-aggregating ranking: chunk hits -> one result per image, with the best chunk's box."""
from typing import Callable, Dict, List, Sequence

import numpy as np

from loupe.ann import ChunkHits
from loupe.constants import SCORE_CHUNK, SOURCE_CHUNK
from loupe.errors import InvalidRequestError
from loupe.models import choose
from loupe.schema import Match

# Each takes the hits' scores grouped by parent (best first within a group), each group's
# start and size, each score's rank in its group, and top_k; returns one score per group.
Aggregate = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


def _max(scores, starts, sizes, ranks, top_k):
    return scores[starts]


def _mean(scores, starts, sizes, ranks, top_k):
    return np.add.reduceat(scores, starts) / sizes


def _sum_top_k(scores, starts, sizes, ranks, top_k):
    # Rewards images where the query matches several regions (e.g. "a flock of birds").
    return np.add.reduceat(np.where(ranks < top_k, scores, 0.0), starts)


AGGREGATIONS: Dict[str, Aggregate] = {
    'max': _max,
    'mean': _mean,
    'sum_top_k': _sum_top_k,
}


def chunk_match(parent_id: str, score: float, box, kind: str) -> Match:
    """One chunk hit as the ranker takes it, from the index or from ``loupe eval``'s exact search.

    ``construct``: the values are already of the fields' types, and validating a hundred hits
    per query costs more than the search itself.
    """
    return Match.construct(parent_id=parent_id, score=score, scores={SCORE_CHUNK: score},
                           highlight_box=box, highlight_source=SOURCE_CHUNK, chunk_kind=kind)


def rank_hits(hits: ChunkHits, aggregation: str = 'max', top_k: int = 3,
              limit: int = 10) -> List[Match]:
    """Group chunk hits by parent image, best ``limit`` parents first (ties: the parent hit
    first comes first).

    The highlight of a parent is the box of its best-scoring chunk, whatever the aggregation.
    """
    if limit <= 0:
        raise InvalidRequestError(f'limit must be > 0, got {limit}')
    if top_k <= 0:
        raise InvalidRequestError(f'top_k must be > 0, got {top_k}')
    aggregate = choose(AGGREGATIONS, aggregation, 'aggregation')
    n = len(hits)
    if not n:
        return []
    first_seen: Dict[str, int] = {}
    group = np.fromiter((first_seen.setdefault(p, len(first_seen)) for p in hits.parent_ids),
                        np.int64, n)
    scores = np.asarray(hits.similarities, dtype=np.float64)
    order = np.lexsort((-scores, group))  # by group, then best score first (stable)
    grouped = scores[order]
    starts = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]])
    sizes = np.diff(np.r_[starts, n])
    ranks = np.arange(n) - np.repeat(starts, sizes)
    totals = aggregate(grouped, starts, sizes, ranks, top_k)
    best = order[starts]  # each group's best hit; groups are numbered by first appearance
    # Results only for the parents returned: a query's chunk hits span many more. A result's
    # id is its image's id, over every protocol.
    out = []
    for g in np.lexsort((np.arange(len(starts)), -totals))[:limit].tolist():
        row, score = int(best[g]), float(totals[g])
        out.append(Match(id=hits.parent_ids[row], parent_id=hits.parent_ids[row], score=score,
                         scores={SCORE_CHUNK: score}, highlight_box=hits.boxes[row].tolist(),
                         highlight_source=SOURCE_CHUNK,
                         chunk_kind=hits.kind_names[hits.kind_codes[row]]))
    return out


def hits_of_matches(matches: Sequence[Match]) -> ChunkHits:
    """Chunk-level matches (evaluation builds them) as hits."""
    return ChunkHits.of([m.parent_id for m in matches], [m.highlight_box for m in matches],
                        [m.score for m in matches], [m.chunk_kind for m in matches],
                        [None] * len(matches))


def rank_parents(chunk_matches: Sequence[Match], aggregation: str = 'max', top_k: int = 3,
                 limit: int = 10) -> List[Match]:
    """``rank_hits`` of chunk-level ``Match``es."""
    return rank_hits(hits_of_matches(chunk_matches), aggregation, top_k, limit)
