"""The ``none`` and ``grid`` methods: the whole image alone, or tilings of it (no model)."""
from typing import List, Sequence

import numpy as np

from loupe.boxes import as_boxes
from loupe.config import SegmenterSettings
from loupe.constants import KIND_GRID, KIND_WHOLE
from loupe.images import DecodedImage
from loupe.segmentation.model_cache import ModelCache
from loupe.segmentation.proposals import Candidates


def _spans(length: float, n: int, overlap: float) -> List[tuple]:
    # Equal cells, neighbours sharing ``overlap`` of a cell, the last one ending at ``length``.
    size = length / (n - (n - 1) * overlap)
    step = size * (1 - overlap)
    return [(i * step, i * step + size) for i in range(n)]


def grid_boxes(width: int, height: int, rows: int, cols: int, overlap: float = 0.0,
               levels: int = 1) -> np.ndarray:
    """Cells of each level's grid, coarse to fine, row by row; each level covers the image."""
    out = []
    for level in range(1, levels + 1):
        xs = _spans(width, cols * level, overlap)
        ys = _spans(height, rows * level, overlap)
        out += [[x1, y1, x2, y2] for y1, y2 in ys for x1, x2 in xs]
    return as_boxes(out)


def none_candidates(images: Sequence[DecodedImage], s: SegmenterSettings,
                    models: ModelCache) -> List[Candidates]:
    return [Candidates(boxes=as_boxes([]), kind=KIND_WHOLE) for _ in images]


def grid_candidates(images: Sequence[DecodedImage], s: SegmenterSettings,
                    models: ModelCache) -> List[Candidates]:
    return [Candidates(boxes=grid_boxes(d.width, d.height, s.grid_rows, s.grid_cols,
                                        s.grid_overlap, s.grid_levels), kind=KIND_GRID)
            for d in images]
