"""Proposal recall: how many ground-truth objects some chunk of a partition method covers.

An object counts as covered at threshold t when a chunk's box (the whole image included, as it
is always a chunk) overlaps its box with IoU >= t. This bounds what localised retrieval can
highlight: an object no chunk covers can only be found through a chunk that is mostly something
else. Needs no trained model for ``none`` and ``grid``.

Result per method: ``settings``, ``images``, ``objects`` (count per size bucket and ``all``),
``recall`` (threshold -> bucket -> share, None where a bucket is empty), ``mean_best_iou``
(bucket -> mean over objects of the best IoU any chunk reaches), ``chunks_per_image``
(``mean``, ``max``), ``failed`` (images that could not be decoded), ``seconds``.
"""
import time
from typing import List, Sequence

import numpy as np

from loupe.boxes import iou_matrix
from loupe.evaluation.datasets import BoxDataset
from loupe.evaluation.metrics import ALL, BUCKETS, mean, share, size_buckets
from loupe.evaluation.partition import partition_files
from loupe.evaluation.specs import MethodSpec, describe
from loupe.segment import Partitioner

DEFAULT_THRESHOLDS = (0.5, 0.3)


def evaluate_proposals(dataset: BoxDataset, specs: Sequence[MethodSpec],
                       partitioner: Partitioner, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                       progress: bool = False) -> dict:
    return {'evaluation': 'proposals', 'dataset': dataset.describe(),
            'thresholds': [float(t) for t in thresholds],
            'methods': {spec.label: _method(dataset, spec, partitioner, thresholds, progress)
                        for spec in specs}}


def _method(dataset: BoxDataset, spec: MethodSpec, partitioner: Partitioner,
            thresholds: Sequence[float], progress: bool) -> dict:
    started = time.perf_counter()
    paths = [im.path for im in dataset.images]
    best: List[np.ndarray] = []
    sizes: List[np.ndarray] = []
    counts: List[int] = []
    failed: List[str] = []
    for i, proposals, error in partition_files(paths, spec.settings, partitioner, progress,
                                               desc=spec.label):
        if error is not None:
            failed.append(f'{paths[i]}: {error}')
            continue
        counts.append(len(proposals))
        gt = dataset.images[i].boxes
        if len(gt):
            best.append(iou_matrix(gt, [p.box for p in proposals]).max(axis=1))
            sizes.append(size_buckets(gt))
    best_iou = np.concatenate(best) if best else np.zeros(0)
    size = np.concatenate(sizes) if sizes else np.zeros(0, dtype=str)
    masks = {**{b: size == b for b in BUCKETS}, ALL: np.ones(len(best_iou), dtype=bool)}
    return {
        'settings': describe(spec),
        'images': len(counts),
        'objects': {b: int(m.sum()) for b, m in masks.items()},
        'recall': {str(float(t)): {b: share(best_iou[m] >= t) for b, m in masks.items()}
                   for t in thresholds},
        'mean_best_iou': {b: mean(best_iou[m]) for b, m in masks.items()},
        'chunks_per_image': {'mean': mean(counts), 'max': max(counts, default=None)},
        'failed': failed,
        'seconds': round(time.perf_counter() - started, 3),
    }
