"""The second stage as the OWL reranker executor applies it, over images read from disk.

The top ``top`` results of a ranking go through the service's own rerank step
(``loupe.rerank.rerank_matches``); the rest keep their order. Detections are cached per
(query, image): the same query meets the same images under several partition methods.
"""
import time
from pathlib import Path
from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple

from loupe.errors import ImageLoadError
from loupe.evaluation.defaults import DEFAULT_RERANK_TOP
from loupe.images import decode
from loupe.rerank import (DEFAULT_RERANK_WEIGHT, MIN_DETECTION_SCORE, Detection, Reranker,
                          check_weight, rerank_matches)
from loupe.schema import Match


class RerankStage:
    def __init__(self, reranker: Reranker, paths: Sequence[Path], top: int = DEFAULT_RERANK_TOP,
                 weight: Optional[float] = None,
                 min_detection_score: float = MIN_DETECTION_SCORE):
        if top <= 0:
            raise ValueError(f'rerank top must be > 0, got {top}')
        self.reranker = reranker
        self.paths = paths
        self.top = top
        self.weight = check_weight(DEFAULT_RERANK_WEIGHT if weight is None else weight)
        self.min_detection_score = min_detection_score
        self.seconds = 0.0
        self._queries: Dict[Hashable, object] = {}
        self._detections: Dict[Tuple[Hashable, int], Detection] = {}

    def __call__(self, ranking: Sequence[Match], key: Hashable,
                 make_query: Callable[[], object]) -> List[Match]:
        """``ranking`` with its head reranked by the service's own step (``rerank_matches``);
        ``make_query`` gives the OWL query embedding (``text_query`` / ``image_query``),
        computed once per ``key``. The ranking itself is left as it was."""
        started = time.perf_counter()

        def detect(head: List[Match]) -> List[Optional[Detection]]:
            images = [int(m.parent_id) for m in head]
            self._detect(key, make_query, images)
            return [self._detections.get((key, i)) for i in images]

        head = [m.copy(deep=True) for m in ranking[:self.top]]
        out = rerank_matches(head + list(ranking[self.top:]), self.top, detect, self.weight,
                             self.min_detection_score)
        self.seconds += time.perf_counter() - started
        return out

    def _detect(self, key: Hashable, make_query: Callable[[], object], images: List[int]):
        todo, decoded = [], []
        for i in images:
            if (key, i) in self._detections:
                continue
            try:
                decoded.append(decode(self.paths[i].read_bytes(),
                                      min_side=self.reranker.input_size))
                todo.append(i)
            except (ImageLoadError, OSError):
                continue
        if not todo:
            return
        if key not in self._queries:
            self._queries[key] = make_query()
        for i, detection in zip(todo, self.reranker.detect(decoded, self._queries[key])):
            self._detections[(key, i)] = detection
