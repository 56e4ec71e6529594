"""Proposals (regions to embed) and the post-processing every method shares (``finalize``)."""
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from loupe.boxes import area, clip_to_image, iou_matrix, nms, to_list
from loupe.config import SegmenterSettings
from loupe.constants import KIND_WHOLE

# A box this close to the whole image adds nothing: the whole image is always a chunk.
WHOLE_DUPLICATE_IOU = 0.9


@dataclass(frozen=True)
class Proposal:
    box: List[float]  # [x1, y1, x2, y2], original pixels
    kind: str  # loupe.constants.KIND_*
    label: Optional[str] = None
    score: Optional[float] = None


@dataclass
class Candidates:
    """Raw boxes of one method for one image, before ``finalize``."""

    boxes: np.ndarray  # (n, 4), original pixels
    kind: str
    scores: Optional[np.ndarray] = None  # None: a designed tiling, exempt from NMS
    labels: Optional[List[str]] = None


def finalize(c: Candidates, width: int, height: int, s: SegmenterSettings) -> List[Proposal]:
    """Whole image first, then the candidates clipped, filtered, de-duplicated and capped.

    Boxes smaller than ``min_box_area`` (a share of the image area, so the rule does not depend
    on resolution) or of zero area go, as do near-duplicates of the whole image. Scored boxes
    go through class-agnostic NMS and are capped best first; unscored ones (a grid) keep their
    order and are never suppressed, or overlapping tilings would lose coverage.
    """
    whole = [0.0, 0.0, float(width), float(height)]
    boxes = clip_to_image(c.boxes, width, height)
    areas = area(boxes)
    keep = (areas > 0) & (areas >= s.min_box_area * width * height)
    keep &= iou_matrix(boxes, whole)[:, 0] <= WHOLE_DUPLICATE_IOU
    idx = np.flatnonzero(keep)
    if c.scores is not None and idx.size:
        idx = idx[nms(boxes[idx], c.scores[idx], s.nms_iou)]
    out = [Proposal(box=whole, kind=KIND_WHOLE)]
    for i in idx[:s.max_boxes]:
        out.append(Proposal(
            box=to_list(boxes[i]), kind=c.kind,
            label=c.labels[i] if c.labels is not None else None,
            score=float(c.scores[i]) if c.scores is not None else None))
    return out
