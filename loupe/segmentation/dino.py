"""The ``dino`` method: boxes around the attention of a self-supervised ViT's CLS token (DINO)."""
import inspect
from collections import deque
from typing import List, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModel

from loupe.boxes import as_boxes
from loupe.config import SegmenterSettings
from loupe.constants import DEFAULT_DINO_MODEL, ENV_DINO_MODEL, KIND_DINO
from loupe.errors import LoupeError
from loupe.images import DecodedImage
from loupe.models import from_pretrained, resolve_checkpoint, resolve_device
from loupe.segmentation.model_cache import ModelCache, batches
from loupe.segmentation.proposals import Candidates

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


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


def dino_candidates(images: Sequence[DecodedImage], s: SegmenterSettings,
                    models: ModelCache) -> List[Candidates]:
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
    for group in batches(shapes, s.batch_size):
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
