"""Box arithmetic on ``[x1, y1, x2, y2]`` arrays in pixels."""
import numpy as np


def as_boxes(boxes) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def area(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def _intersection_union(a: np.ndarray, b: np.ndarray):
    """Pairwise intersection and union areas of two (N, 4) box arrays."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter, area(a)[:, None] + area(b)[None, :] - inter


def iou_matrix(a, b) -> np.ndarray:
    """Pairwise IoU, shape (len(a), len(b))."""
    inter, union = _intersection_union(as_boxes(a), as_boxes(b))
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def generalized_iou(a, b) -> np.ndarray:
    """Pairwise generalised IoU (Rezatofighi et al., CVPR 2019), shape (len(a), len(b)): IoU
    minus the share of the smallest enclosing box that neither covers; in [-1, 1], and it still
    ranks boxes that do not overlap (by how far apart they are)."""
    a, b = as_boxes(a), as_boxes(b)
    inter, union = _intersection_union(a, b)
    iou_ = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
    hull = ((np.maximum(a[:, None, 2], b[None, :, 2]) - np.minimum(a[:, None, 0], b[None, :, 0]))
            * (np.maximum(a[:, None, 3], b[None, :, 3]) - np.minimum(a[:, None, 1], b[None, :, 1])))
    return iou_ - np.where(hull > 0, (hull - union) / np.maximum(hull, 1e-9), 0.0)


def iou(a, b) -> float:
    return float(iou_matrix(a, b)[0, 0])


def clip_to_image(boxes, width: int, height: int) -> np.ndarray:
    b = as_boxes(boxes).copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
    return b


def nms(boxes, scores, iou_threshold: float) -> np.ndarray:
    """Class-agnostic non-maximum suppression; returns kept indices, best score first."""
    b = as_boxes(boxes)
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind='stable')
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        overlaps = iou_matrix(b[i:i + 1], b[order[1:]])[0]
        order = order[1:][overlaps <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def scale(boxes, sx: float, sy: float) -> np.ndarray:
    return as_boxes(boxes) * np.asarray([sx, sy, sx, sy], dtype=np.float32)


def to_list(box) -> list:
    return [round(float(v), 2) for v in np.asarray(box).reshape(4)]
