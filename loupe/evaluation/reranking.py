"""The second stage as the OWL reranker executor applies it, over images read from disk.

The top ``top`` results of a ranking are re-scored with ``combine_scores`` and get the detected
box as highlight; the rest keep their order. Detections are cached per (query, image): the same
query meets the same images under several partition methods.
"""
import time
from pathlib import Path
from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple

from loupe.boxes import to_list
from loupe.constants import SCORE_CHUNK, SCORE_FINAL, SCORE_RERANK, SOURCE_RERANKER
from loupe.errors import ImageLoadError
from loupe.evaluation.defaults import DEFAULT_RERANK_TOP
from loupe.images import decode
from loupe.rerank import DEFAULT_RERANK_WEIGHT, Detection, Reranker, check_weight, combine_scores
from loupe.schema import Match


class RerankStage:
    def __init__(self, reranker: Reranker, paths: Sequence[Path], top: int = DEFAULT_RERANK_TOP,
                 weight: Optional[float] = None):
        if top <= 0:
            raise ValueError(f'rerank top must be > 0, got {top}')
        self.reranker = reranker
        self.paths = paths
        self.top = top
        self.weight = check_weight(DEFAULT_RERANK_WEIGHT if weight is None else weight)
        self.seconds = 0.0
        self._queries: Dict[Hashable, object] = {}
        self._detections: Dict[Tuple[Hashable, int], Detection] = {}

    def __call__(self, ranking: Sequence[Match], key: Hashable,
                 make_query: Callable[[], object]) -> List[Match]:
        """``ranking`` with its head reranked; ``make_query`` gives the OWL query embedding
        (``text_query`` / ``image_query``), computed once per ``key``."""
        started = time.perf_counter()
        head, tail = list(ranking[:self.top]), list(ranking[self.top:])
        self._detect(key, make_query, [int(m.parent_id) for m in head])
        out = []
        for m in head:
            detection = self._detections.get((key, int(m.parent_id)))
            if detection is None:  # its image could not be decoded: left as ranked
                out.append(m)
                continue
            score = combine_scores(m.scores.get(SCORE_CHUNK, m.score), detection.score,
                                   self.weight)
            out.append(Match(parent_id=m.parent_id, score=score,
                             scores={**m.scores, SCORE_RERANK: detection.score,
                                     SCORE_FINAL: score},
                             highlight_box=to_list(detection.box),
                             highlight_source=SOURCE_RERANKER, chunk_kind=m.chunk_kind))
        out.sort(key=lambda m: m.score, reverse=True)
        self.seconds += time.perf_counter() - started
        return out + tail

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
