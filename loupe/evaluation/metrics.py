"""The formulas: object size buckets, ranks, recall@k, average precision."""
from typing import Dict, Iterable, Optional, Sequence

import numpy as np

from loupe.boxes import area

# COCO's object sizes, by area in original pixels: small < 32², medium < 96², large the rest.
# Areas are box areas here (COCO's own evaluation uses mask areas where it has them).
SMALL_AREA = 32 ** 2
MEDIUM_AREA = 96 ** 2
BUCKETS = ('small', 'medium', 'large')
ALL = 'all'
DEFAULT_KS = (1, 5, 10)


def size_buckets(boxes) -> np.ndarray:
    """The bucket name of each box."""
    a = area(boxes)
    return np.where(a < SMALL_AREA, 'small', np.where(a < MEDIUM_AREA, 'medium', 'large'))


def share(flags: Iterable[bool]) -> Optional[float]:
    """Share of true values; None when there are none to count (not 0: nothing was measured)."""
    values = np.asarray(list(flags), dtype=bool)
    return float(values.mean()) if values.size else None


def mean(values: Iterable[float]) -> Optional[float]:
    values = np.asarray(list(values), dtype=np.float64)
    return float(values.mean()) if values.size else None


def recall_at(ranks: Sequence[int], ks: Sequence[int] = DEFAULT_KS) -> Dict[str, Optional[float]]:
    """Share of queries whose item was found within the first k (ranks are 1-based; 0: missed)."""
    ranks = np.asarray(ranks, dtype=np.int64)
    return {str(k): share((ranks >= 1) & (ranks <= k)) for k in ks}


def average_precision(ranked_relevant: Sequence[bool], total_relevant: int) -> Optional[float]:
    """AP of one ranked list; relevant items that were never ranked count as missed."""
    if total_relevant <= 0:
        return None
    flags = np.asarray(ranked_relevant, dtype=bool)
    positions = np.flatnonzero(flags) + 1
    precisions = np.arange(1, len(positions) + 1) / positions
    return float(precisions.sum() / total_relevant)
