"""Localised retrieval: class names as text queries against a box-annotated set's chunks.

For each class present, the query ``prompt.format(class)`` ranks every image (first stage:
chunks ranked by ``rank_parents``; with a reranker, its top results re-scored as the service
does). An image is relevant when it holds an object of the class. Per row (method, rerank):

- ``recall``: k -> mean over queries of (relevant images in the top k) / (relevant images);
- ``hit``: k -> share of queries with a relevant image in the top k;
- ``precision``: k -> mean share of the top k that is relevant;
- ``map``: mean over queries of average precision over the full ranking;
- ``highlight_hit``: over the relevant images in the top max(k) of every query, the share whose
  highlight box overlaps an object of the class with IoU >= 0.5 (``highlights``: how many);
- ``per_class``: class -> ``ap`` and ``relevant``; ``seconds``: index, search, rerank.
"""
from typing import Dict, List, Optional, Sequence, Set

import numpy as np

from loupe.boxes import iou_matrix
from loupe.evaluation.corpus import rows_per_method
from loupe.evaluation.datasets import BoxDataset
from loupe.evaluation.defaults import DEFAULT_PROMPT
from loupe.evaluation.metrics import DEFAULT_KS, average_precision, mean, share
from loupe.evaluation.reranking import RerankStage
from loupe.evaluation.specs import MethodSpec
from loupe.schema import Match
from loupe.segment import Partitioner

HIGHLIGHT_IOU = 0.5


def evaluate_retrieval(dataset: BoxDataset, specs: Sequence[MethodSpec], partitioner: Partitioner,
                       embedder, rerank: Optional[RerankStage] = None,
                       ks: Sequence[int] = DEFAULT_KS, prompt: str = DEFAULT_PROMPT,
                       aggregation: str = 'max', top_k: int = 3, progress: bool = False) -> dict:
    classes = dataset.classes
    texts = [prompt.format(c) for c in classes]
    queries = embedder.embed_texts(texts)
    relevant = {c: {i for i, im in enumerate(dataset.images) if c in im.labels} for c in classes}
    rows = rows_per_method(
        [im.path for im in dataset.images], specs, partitioner, embedder, queries,
        lambda rankings: _scores(dataset, classes, relevant, rankings, ks), rerank,
        [(('text', t), lambda t=t: rerank.reranker.text_query(t)) for t in texts],
        aggregation, top_k, progress)
    return {'evaluation': 'retrieval', 'dataset': dataset.describe(), 'prompt': prompt,
            'aggregation': aggregation, 'ks': list(ks), 'queries': len(classes), 'rows': rows}


def _scores(dataset: BoxDataset, classes: List[str], relevant: Dict[str, Set[int]],
            rankings: List[List[Match]], ks: Sequence[int]) -> dict:
    recall, hit, precision = ({k: [] for k in ks} for _ in range(3))
    aps, highlights, per_class = [], [], {}
    for cls, ranking in zip(classes, rankings):
        ids = [int(m.parent_id) for m in ranking]
        flags = np.asarray([i in relevant[cls] for i in ids], dtype=bool)
        total = len(relevant[cls])
        for k in ks:
            found = int(flags[:k].sum())
            recall[k].append(found / total)
            hit[k].append(found > 0)
            precision[k].append(found / k)
        ap = average_precision(flags, total)
        aps.append(ap)
        per_class[cls] = {'ap': ap, 'relevant': total}
        for m, i in zip(ranking[:max(ks)], ids):
            if i in relevant[cls]:
                im = dataset.images[i]
                gt = im.boxes[[label == cls for label in im.labels]]
                highlights.append(iou_matrix([m.highlight_box], gt).max() >= HIGHLIGHT_IOU)
    return {'queries': len(classes),
            'recall': {str(k): mean(v) for k, v in recall.items()},
            'hit': {str(k): share(v) for k, v in hit.items()},
            'precision': {str(k): mean(v) for k, v in precision.items()},
            'map': mean(aps), 'highlight_hit': share(highlights), 'highlights': len(highlights),
            'per_class': per_class}
