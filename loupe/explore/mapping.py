"""A 2-D map of whole-image vectors: projection (PCA, or UMAP where installed) and a layout on
a grid, so thumbnails drawn at their positions never pile up on each other."""
import math
from typing import Tuple

import numpy as np

from loupe.errors import InvalidRequestError

UMAP_HINT = "UMAP is optional: pip install 'loupe[umap]' (umap-learn), or use projection pca"
_EXACT_LAYOUT_MAX = 1000  # optimal assignment up to this many points, greedy above
_EMPTY_SHARE = 0.25  # grid cells left free, so clusters keep some of their shape


def to_2d(vectors: np.ndarray, method: str = 'pca', seed: int = 0) -> np.ndarray:
    """(n, 2) coordinates, each axis scaled to [0, 1] (1st..99th percentile, clipped)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n < 3:
        return np.full((n, 2), 0.5) + np.array([[0.25 * i, 0.0] for i in range(n)]) - 0.125 * (n - 1)
    if method == 'umap':
        try:
            import umap
        except ImportError:
            raise InvalidRequestError(UMAP_HINT) from None
        xy = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, n - 1),
                       metric='cosine').fit_transform(vectors)
    else:
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=seed).fit_transform(vectors)
    lo, hi = np.percentile(xy, 1, axis=0), np.percentile(xy, 99, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.clip((xy - lo) / span, 0.0, 1.0)


def grid_shape(n: int) -> Tuple[int, int]:
    cells = max(1, math.ceil(n / (1 - _EMPTY_SHARE)))
    cols = max(1, math.ceil(math.sqrt(cells)))
    return cols, max(1, math.ceil(cells / cols))


def grid_layout(xy: np.ndarray) -> Tuple[np.ndarray, int, int]:
    """(cells (n, 2) as integer column, row), cols, rows: each point on its own cell, as near
    its projected position as the others allow (optimal assignment for small maps, nearest
    free cell, points nearest the centre first, for large ones)."""
    n = len(xy)
    cols, rows = grid_shape(n)
    target = np.asarray(xy, dtype=np.float64) * [cols - 1, rows - 1]
    if n <= _EXACT_LAYOUT_MAX:
        from scipy.optimize import linear_sum_assignment

        cx, cy = np.meshgrid(np.arange(cols), np.arange(rows))
        centres = np.stack([cx.ravel(), cy.ravel()], axis=1)
        cost = ((target[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        points, cells = linear_sum_assignment(cost)
        out = np.zeros((n, 2), np.int64)
        out[points] = centres[cells]
        return out, cols, rows
    taken = np.zeros((rows, cols), bool)
    out = np.zeros((n, 2), np.int64)
    centre = np.array([(cols - 1) / 2, (rows - 1) / 2])
    for i in np.argsort(((target - centre) ** 2).sum(1), kind='stable'):
        out[i] = _nearest_free(taken, target[i])
        taken[out[i][1], out[i][0]] = True
    return out, cols, rows


def _nearest_free(taken: np.ndarray, point: np.ndarray) -> Tuple[int, int]:
    rows, cols = taken.shape
    x0, y0 = int(round(point[0])), int(round(point[1]))
    for radius in range(max(rows, cols) + 1):
        best, best_d = None, None
        for y in range(max(0, y0 - radius), min(rows, y0 + radius + 1)):
            for x in range(max(0, x0 - radius), min(cols, x0 + radius + 1)):
                if max(abs(x - x0), abs(y - y0)) != radius or taken[y, x]:
                    continue
                d = (x - point[0]) ** 2 + (y - point[1]) ** 2
                if best_d is None or d < best_d:
                    best, best_d = (x, y), d
        if best is not None:
            return best
    raise ValueError('no free cell left')  # grid_shape makes more cells than points
