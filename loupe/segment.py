"""Partitioning images into regions worth embedding on their own (chunks).

Every method yields proposals in original-image pixels (EXIF orientation applied): the whole
image first, then the method's boxes after one shared post-processing step (``finalize``).
Methods: ``none`` (whole image only), ``grid`` (a tiling), ``detector`` (a COCO object
detector through transformers), ``dino`` (attention saliency of a self-supervised ViT).
"""
import inspect
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from transformers import (
    AutoConfig, AutoImageProcessor, AutoModel, AutoModelForObjectDetection)

from loupe.boxes import area, as_boxes, clip_to_image, iou_matrix, nms, to_list
from loupe.constants import (
    DEFAULT_DETECTOR_MODEL, DEFAULT_DINO_MODEL, ENV_DETECTOR_MODEL, ENV_DINO_MODEL, KIND_DETECTOR,
    KIND_DINO, KIND_GRID, KIND_WHOLE)
from loupe.config import SegmenterSettings, build, names
from loupe.errors import ConfigError, InvalidRequestError, LoupeError
from loupe.images import DecodedImage
from loupe.models import choose, from_pretrained, resolve_checkpoint, resolve_device

# A box this close to the whole image adds nothing: the whole image is always a chunk.
WHOLE_DUPLICATE_IOU = 0.9
# Shorter side (pixels) each method needs decoded, so JPEGs can be draft-decoded (much faster).
# Grid needs only the size, but decoding a small draft still catches broken files; detectors
# of the DETR family take at most 800 (D-FINE 640); dino needs ``dino_size``.
_DECODE_SIDE = {'none': 64, 'grid': 64, 'detector': 800}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Proposal:
    box: List[float]  # [x1, y1, x2, y2], original pixels
    kind: str  # loupe.constants.KIND_*
    label: Optional[str] = None
    score: Optional[float] = None


Settings = SegmenterSettings  # the partitioner's settings are the segmenter executor's
SETTING_NAMES = names(Settings)


def make_settings(base: Settings, overrides: Optional[dict] = None,
                  error=InvalidRequestError) -> Settings:
    """``base`` with ``overrides`` applied and checked; unknown names are an error."""
    return build(Settings, overrides, base=base, error=error)


@dataclass
class Candidates:
    """Raw boxes of one method for one image, before ``finalize``."""

    boxes: np.ndarray  # (n, 4), original pixels
    kind: str
    scores: Optional[np.ndarray] = None  # None: a designed tiling, exempt from NMS
    labels: Optional[List[str]] = None


def finalize(c: Candidates, width: int, height: int, s: Settings) -> List[Proposal]:
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


# --- grid -------------------------------------------------------------------------------------

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


def _none(images: Sequence[DecodedImage], s: Settings, models: 'ModelCache') -> List[Candidates]:
    return [Candidates(boxes=as_boxes([]), kind=KIND_WHOLE) for _ in images]


def _grid(images: Sequence[DecodedImage], s: Settings, models: 'ModelCache') -> List[Candidates]:
    return [Candidates(boxes=grid_boxes(d.width, d.height, s.grid_rows, s.grid_cols,
                                        s.grid_overlap, s.grid_levels), kind=KIND_GRID)
            for d in images]


# --- models -----------------------------------------------------------------------------------

class ModelCache:
    """Models loaded on first use, one per (role, checkpoint, device), shared across requests."""

    def __init__(self):
        self._models: Dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, load: Callable[[], tuple]) -> tuple:
        with self._lock:  # sync endpoints run in a thread pool: load each model once
            if key not in self._models:
                self._models[key] = load()
            return self._models[key]


def _batches(keys: Sequence, batch_size: int) -> List[List[int]]:
    """Indices grouped by key (inputs of one shape stack without padding), at most batch_size."""
    groups: Dict = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return [g[j:j + batch_size] for g in groups.values() for j in range(0, len(g), batch_size)]


def _load_detector(checkpoint: str, device: torch.device) -> tuple:
    model = from_pretrained(AutoModelForObjectDetection, checkpoint).to(device).eval()
    return model, from_pretrained(AutoImageProcessor, checkpoint)


def _detector(images: Sequence[DecodedImage], s: Settings, models: ModelCache
              ) -> List[Candidates]:
    checkpoint = resolve_checkpoint(s.detector_model, ENV_DETECTOR_MODEL, DEFAULT_DETECTOR_MODEL)
    device = resolve_device(s.device)
    model, processor = models.get(('detector', checkpoint, str(device)),
                                  lambda: _load_detector(checkpoint, device))
    id2label = model.config.id2label or {}
    # One image at a time through the processor, then batches of equal input size: padding
    # would change what normalised boxes are relative to for DETR-style processors.
    inputs = [processor(images=d.image, return_tensors='pt') for d in images]
    results: List[Optional[Candidates]] = [None] * len(images)
    for group in _batches([tuple(x['pixel_values'].shape) for x in inputs], s.batch_size):
        batch = {k: torch.cat([inputs[i][k] for i in group]).to(device) for k in inputs[group[0]]}
        with torch.inference_mode():
            outputs = model(**batch)
        detections = processor.post_process_object_detection(
            outputs, threshold=s.detector_threshold,
            target_sizes=[(images[i].image.height, images[i].image.width) for i in group])
        for i, det in zip(group, detections):
            labels = [int(v) for v in det['labels'].tolist()]
            results[i] = Candidates(
                boxes=images[i].to_original(det['boxes'].float().cpu().numpy()),
                kind=KIND_DETECTOR, scores=det['scores'].float().cpu().numpy(),
                labels=[id2label.get(v, str(v)) for v in labels])
    return results


def _load_dino(checkpoint: str, device: torch.device) -> tuple:
    config = from_pretrained(AutoConfig, checkpoint)
    # DINO ViT checkpoints have no pooler; without this, loading warns of missing weights.
    extra = {'add_pooling_layer': False} if config.model_type == 'vit' else {}
    # Eager attention: SDPA kernels do not return attention weights.
    model = from_pretrained(AutoModel, checkpoint, config=config, attn_implementation='eager',
                            **extra)
    return model.to(device).eval(), from_pretrained(AutoImageProcessor, checkpoint)


def dino_grid(width: int, height: int, size: int, patch: int) -> tuple:
    """(rows, cols) of patches: the longer side ~``size`` pixels, aspect ratio kept."""
    long_cells = max(1, round(size / patch))
    short_cells = max(1, round(long_cells * min(width, height) / max(width, height)))
    return (long_cells, short_cells) if height >= width else (short_cells, long_cells)


def connected_components(mask: np.ndarray) -> List[np.ndarray]:
    """4-connected regions of a boolean grid, each as an (n, 2) array of (row, col) cells."""
    seen = np.zeros_like(mask, dtype=bool)
    rows, cols = mask.shape
    regions = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start] = True
        queue, cells = deque([start]), []
        while queue:
            r, c = queue.popleft()
            cells.append((r, c))
            for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= nr < rows and 0 <= nc < cols and mask[nr, nc] and not seen[nr, nc]:
                    seen[nr, nc] = True
                    queue.append((nr, nc))
        regions.append(np.asarray(cells))
    return regions


def saliency_boxes(attention: np.ndarray, mass: float) -> tuple:
    """Boxes around the connected regions of the patches holding ``mass`` of the attention.

    Returns boxes in patch units ([col0, row0, col1, row1], end exclusive) and, as scores,
    each region's share of the attention mass.
    """
    a = np.clip(np.asarray(attention, dtype=np.float64), 0, None)
    total = a.sum()
    if total <= 0:
        return as_boxes([]), np.zeros(0, dtype=np.float32)
    flat = a.ravel()
    order = np.argsort(-flat, kind='stable')
    before = np.cumsum(flat[order]) - flat[order]  # mass of strictly hotter patches
    mask = np.zeros(flat.size, dtype=bool)
    mask[order[before < mass * total]] = True
    boxes, scores = [], []
    for cells in connected_components(mask.reshape(a.shape)):
        r, c = cells[:, 0], cells[:, 1]
        boxes.append([c.min(), r.min(), c.max() + 1, r.max() + 1])
        scores.append(a[r, c].sum() / total)
    return as_boxes(boxes), np.asarray(scores, dtype=np.float32)


def _dino_pixels(d: DecodedImage, rows: int, cols: int, patch: int, processor) -> np.ndarray:
    img = d.image.resize((cols * patch, rows * patch), Image.Resampling.BICUBIC)
    mean = np.asarray(getattr(processor, 'image_mean', None) or _IMAGENET_MEAN, np.float32)
    std = np.asarray(getattr(processor, 'image_std', None) or _IMAGENET_STD, np.float32)
    x = (np.asarray(img, dtype=np.float32) / 255.0 - mean) / std
    return x.transpose(2, 0, 1)


def _dino(images: Sequence[DecodedImage], s: Settings, models: ModelCache) -> List[Candidates]:
    checkpoint = resolve_checkpoint(s.dino_model, ENV_DINO_MODEL, DEFAULT_DINO_MODEL)
    device = resolve_device(s.device)
    model, processor = models.get(('dino', checkpoint, str(device)),
                                  lambda: _load_dino(checkpoint, device))
    patch = model.config.patch_size
    patch = patch[0] if isinstance(patch, (list, tuple)) else int(patch)
    registers = int(getattr(model.config, 'num_register_tokens', 0) or 0)
    kwargs = {'output_attentions': True}
    if 'interpolate_pos_encoding' in inspect.signature(model.forward).parameters:
        kwargs['interpolate_pos_encoding'] = True  # ViT; DINOv2 always interpolates
    shapes = [dino_grid(d.width, d.height, s.dino_size, patch) for d in images]
    results: List[Optional[Candidates]] = [None] * len(images)
    for group in _batches(shapes, s.batch_size):
        rows, cols = shapes[group[0]]
        pixels = np.stack([_dino_pixels(images[i], rows, cols, patch, processor) for i in group])
        with torch.inference_mode():
            outputs = model(pixel_values=torch.from_numpy(pixels).to(device), **kwargs)
        if not outputs.attentions:
            raise LoupeError(f'{checkpoint} returned no attention weights')
        # Token order: CLS, register tokens (DINOv2 with registers), then the patches.
        cls = outputs.attentions[-1][:, :, 0, 1 + registers:].float().cpu().numpy()
        if cls.shape[-1] != rows * cols:
            raise LoupeError(f'{checkpoint}: expected {rows * cols} patch tokens for a '
                             f'{rows}x{cols} grid, got {cls.shape[-1]}')
        maps = cls.reshape(len(group), -1, rows, cols)
        if s.dino_mode == 'sum':
            maps = maps.sum(axis=1, keepdims=True)
        for i, image_maps in zip(group, maps):
            found = [saliency_boxes(m, s.dino_mass) for m in image_maps]
            d = images[i]
            scale = np.asarray([d.width / cols, d.height / rows] * 2, dtype=np.float32)
            results[i] = Candidates(
                boxes=np.concatenate([b for b, _ in found]) * scale, kind=KIND_DINO,
                scores=np.concatenate([sc for _, sc in found]))
    return results


METHODS: Dict[str, Callable] = {'none': _none, 'grid': _grid, 'detector': _detector,
                                'dino': _dino}


# --- entry points -----------------------------------------------------------------------------

def decode_side(s: Settings) -> int:
    """Shorter side, in pixels, that ``s.method`` needs images decoded at."""
    return s.dino_size if s.method == 'dino' else _DECODE_SIDE[s.method]


def max_chunks(s: Settings) -> int:
    """Upper bound of chunks per image (whole image included), to size an index."""
    if s.method == 'none':
        return 1
    if s.method == 'grid':
        cells = sum(s.grid_rows * s.grid_cols * k * k for k in range(1, s.grid_levels + 1))
        return 1 + min(s.max_boxes, cells)
    return 1 + s.max_boxes


class Partitioner:
    """Holds default settings and loaded models; partitions decoded images into proposals."""

    def __init__(self, base: Optional[Settings] = None, **defaults):
        self.settings = make_settings(base or Settings(), defaults, error=ConfigError)
        self.models = ModelCache()

    def resolve(self, **overrides) -> Settings:
        return make_settings(self.settings, overrides)

    def partition(self, images: Sequence[DecodedImage], settings: Optional[Settings] = None
                  ) -> List[List[Proposal]]:
        """Proposals per image, whole image first; model methods run batched over images."""
        s = settings or self.settings
        if not images:
            return []
        candidates = choose(METHODS, s.method, 'partition method')(images, s, self.models)
        return [finalize(c, d.width, d.height, s) for c, d in zip(candidates, images)]
