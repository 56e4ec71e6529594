"""Query by example, small inside large: crops of ground-truth objects find their source image.

Each object whose box is at least ``min_side`` pixels on both sides becomes a query: its crop,
embedded as a query image is (the whole crop), searched against every image's chunks. With a
reranker, the top results are re-scored by image-guided OWL detection of the crop. Per row:

- ``recall``: k -> share of queries whose source image is in the top k;
- ``highlight_iou``: mean IoU of the source image's highlight with the crop's box, over the
  queries whose source is in the top max(k) (``found``: how many); ``highlight_hit``: the share of
  those with IoU >= 0.5;
- ``queries``, ``chunks``, ``failed``, ``seconds`` (index, search, rerank).
"""
from collections import defaultdict
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image

from loupe.boxes import iou
from loupe.errors import ImageLoadError
from loupe.evaluation.corpus import rows_per_method
from loupe.evaluation.datasets import BoxDataset
from loupe.evaluation.defaults import DEFAULT_MIN_SIDE
from loupe.evaluation.metrics import DEFAULT_KS, mean, recall_at, share
from loupe.evaluation.reranking import RerankStage
from loupe.evaluation.specs import MethodSpec
from loupe.schema import Match
from loupe.segment import Partitioner

HIGHLIGHT_IOU = 0.5


@dataclass(frozen=True)
class ExampleQuery:
    image: int  # index of the source image in the data set
    box: List[float]  # the object's box in the source, original pixels
    label: str


def select_queries(dataset: BoxDataset, min_side: float = DEFAULT_MIN_SIDE,
                   max_queries: Optional[int] = None) -> List[ExampleQuery]:
    """Objects large enough to be a meaningful query; at most ``max_queries``, spread evenly."""
    found = [ExampleQuery(i, [float(v) for v in box], label)
             for i, im in enumerate(dataset.images)
             for box, label in zip(im.boxes, im.labels)
             if min(box[2] - box[0], box[3] - box[1]) >= min_side]
    if max_queries is not None and len(found) > max_queries:
        keep = np.unique(np.linspace(0, len(found) - 1, max_queries).round().astype(int))
        found = [found[i] for i in keep]
    return found


def _crops(dataset: BoxDataset, queries: Sequence[ExampleQuery], embedder):
    """(query index, crop) per query whose image decodes; each image is decoded once."""
    by_image = defaultdict(list)
    for n, q in enumerate(queries):
        by_image[q.image].append(n)
    for image, members in by_image.items():
        try:
            decoded = embedder.decode(dataset.images[image].path.read_bytes(),
                                      [queries[n].box for n in members])
        except (ImageLoadError, OSError):
            continue
        for n in members:
            yield n, decoded.crop(queries[n].box)


def crop_of(dataset: BoxDataset, query: ExampleQuery, embedder) -> Image.Image:
    return next(_crops(dataset, [query], embedder))[1]


def evaluate_query_by_example(dataset: BoxDataset, specs: Sequence[MethodSpec],
                              partitioner: Partitioner, embedder,
                              rerank: Optional[RerankStage] = None,
                              ks: Sequence[int] = DEFAULT_KS,
                              min_side: float = DEFAULT_MIN_SIDE,
                              max_queries: Optional[int] = None, aggregation: str = 'max',
                              top_k: int = 3, progress: bool = False) -> dict:
    queries = select_queries(dataset, min_side, max_queries)
    embedded: List[int] = []

    def crops():
        for n, crop in _crops(dataset, queries, embedder):
            embedded.append(n)
            yield crop

    vectors = embedder.embed_images(crops())
    used = [queries[n] for n in embedded]
    rows = rows_per_method(
        [im.path for im in dataset.images], specs, partitioner, embedder, vectors,
        lambda rankings: _scores(used, rankings, ks), rerank,
        [(('image', n), lambda q=q: rerank.reranker.image_query(crop_of(dataset, q, embedder)))
         for n, q in zip(embedded, used)],
        aggregation, top_k, progress)
    return {'evaluation': 'query-by-example', 'dataset': dataset.describe(),
            'min_side': min_side, 'aggregation': aggregation, 'ks': list(ks),
            'queries': len(used), 'rows': rows}


def _scores(queries: Sequence[ExampleQuery], rankings: List[List[Match]],
            ks: Sequence[int]) -> dict:
    ranks, ious = [], []
    for q, ranking in zip(queries, rankings):
        rank = next((r for r, m in enumerate(ranking, start=1) if int(m.parent_id) == q.image), 0)
        ranks.append(rank)
        if 1 <= rank <= max(ks):
            ious.append(iou([ranking[rank - 1].highlight_box], [q.box]))
    return {'queries': len(queries), 'recall': recall_at(ranks, ks),
            'highlight_iou': mean(ious), 'highlight_hit': share(v >= HIGHLIGHT_IOU for v in ious),
            'found': len(ious)}
