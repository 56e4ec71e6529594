"""The ``detector`` method: a COCO object detector through ``AutoModelForObjectDetection``."""
from typing import List, Optional, Sequence

import torch
from transformers import AutoImageProcessor, AutoModelForObjectDetection

from loupe.config import SegmenterSettings
from loupe.constants import DEFAULT_DETECTOR_MODEL, ENV_DETECTOR_MODEL, KIND_DETECTOR
from loupe.images import DecodedImage
from loupe.models import from_pretrained, resolve_checkpoint, resolve_device
from loupe.segmentation.model_cache import ModelCache, batches
from loupe.segmentation.proposals import Candidates


def _load_detector(checkpoint: str, device: torch.device) -> tuple:
    model = from_pretrained(AutoModelForObjectDetection, checkpoint).to(device).eval()
    return model, from_pretrained(AutoImageProcessor, checkpoint)


def detector_candidates(images: Sequence[DecodedImage], s: SegmenterSettings,
                        models: ModelCache) -> List[Candidates]:
    checkpoint = resolve_checkpoint(s.detector_model, ENV_DETECTOR_MODEL, DEFAULT_DETECTOR_MODEL)
    device = resolve_device(s.device)
    model, processor = models.get(('detector', checkpoint, str(device)),
                                  lambda: _load_detector(checkpoint, device))
    id2label = model.config.id2label or {}
    # One image at a time through the processor, then batches of equal input size: padding
    # would change what normalised boxes are relative to for DETR-style processors.
    inputs = [processor(images=d.image, return_tensors='pt') for d in images]
    results: List[Optional[Candidates]] = [None] * len(images)
    for group in batches([tuple(x['pixel_values'].shape) for x in inputs], s.batch_size):
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
