"""Parent-aggregating ranking: chunk hits -> one result per image, with the best chunk's box."""
from collections import defaultdict
from typing import Callable, Dict, List, Sequence

import numpy as np

from loupe.constants import SCORE_CHUNK, SOURCE_CHUNK
from loupe.errors import InvalidRequestError
from loupe.models import choose
from loupe.schema import Match


def _max(scores: np.ndarray, top_k: int) -> float:
    return float(scores[0])


def _mean(scores: np.ndarray, top_k: int) -> float:
    return float(scores.mean())


def _sum_top_k(scores: np.ndarray, top_k: int) -> float:
    # Rewards images where the query matches several regions (e.g. "a flock of birds").
    return float(scores[:top_k].sum())


AGGREGATIONS: Dict[str, Callable[[np.ndarray, int], float]] = {
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


def rank_parents(chunk_matches: Sequence[Match], aggregation: str = 'max', top_k: int = 3,
                 limit: int = 10) -> List[Match]:
    """Group chunk matches by parent image, best ``limit`` parents first.

    The highlight of a parent is the box of its best-scoring chunk, whatever the aggregation.
    """
    if limit <= 0:
        raise InvalidRequestError(f'limit must be > 0, got {limit}')
    if top_k <= 0:
        raise InvalidRequestError(f'top_k must be > 0, got {top_k}')
    aggregate = choose(AGGREGATIONS, aggregation, 'aggregation')
    groups = defaultdict(list)
    for match in chunk_matches:
        groups[match.parent_id].append(match)
    ranked = []
    for parent_id, matches in groups.items():
        matches.sort(key=lambda m: m.score, reverse=True)
        score = aggregate(np.asarray([m.score for m in matches], dtype=np.float64), top_k)
        ranked.append((score, parent_id, matches[0]))
    ranked.sort(key=lambda r: r[0], reverse=True)
    # Results only for the parents returned: a query's chunk hits span many more. A result's
    # id is its image's id, over every protocol.
    return [Match(id=parent_id, parent_id=parent_id, score=score, scores={SCORE_CHUNK: score},
                  highlight_box=best.highlight_box, highlight_source=SOURCE_CHUNK,
                  chunk_kind=best.chunk_kind) for score, parent_id, best in ranked[:limit]]
