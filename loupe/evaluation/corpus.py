"""A data set's chunks, embedded as the index flow embeds them, searched exactly in memory.

Exact search keeps the approximate index's misses out of the figures: they measure partitions
and embeddings. Parents are ranked by the service's own ``rank_parents`` over every image, so
rankings are complete (needed for mAP). For ``max`` and ``sum_top_k`` only each image's best
1 or ``top_k`` chunks can change its score or highlight, so only those are handed to it.
"""
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from loupe.errors import ImageLoadError
from loupe.evaluation.partition import partition_files
from loupe.evaluation.specs import MethodSpec, describe
from loupe.rank import chunk_match, rank_parents
from loupe.schema import Match
from loupe.segment import Partitioner, Settings

_PER_PARENT = {'max': lambda top_k: 1, 'sum_top_k': lambda top_k: top_k}


@dataclass
class Corpus:
    vectors: np.ndarray  # (n, D) float32, unit norm
    parents: np.ndarray  # (n,) index of each chunk's image in the data set
    boxes: np.ndarray  # (n, 4) original pixels
    kinds: List[str]
    failed: List[str] = field(default_factory=list)  # 'file: reason' of images left out

    def rank(self, query: np.ndarray, aggregation: str = 'max', top_k: int = 3) -> List[Match]:
        """Every indexed image, best first; ``parent_id`` is the image's index as a string."""
        if not len(self.parents):
            return []
        sims = self.vectors @ np.asarray(query, dtype=np.float32).ravel()
        matches = [chunk_match(str(self.parents[i]), float(sims[i]),
                               [float(v) for v in self.boxes[i]], self.kinds[i])
                   for i in self._candidates(sims, aggregation, top_k)]
        return rank_parents(matches, aggregation, top_k, limit=len(np.unique(self.parents)))

    def _candidates(self, sims: np.ndarray, aggregation: str, top_k: int) -> np.ndarray:
        per_parent = _PER_PARENT.get(aggregation)
        if per_parent is None:
            return np.arange(len(sims))
        order = np.lexsort((-sims, self.parents))  # by image, best chunk first
        grouped = self.parents[order]
        starts = np.r_[0, np.flatnonzero(grouped[1:] != grouped[:-1]) + 1]
        position = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        return order[position < per_parent(top_k)]


def build_corpus(paths: Sequence[Path], settings: Settings, partitioner: Partitioner, embedder,
                 progress: bool = False, desc: str = '') -> Corpus:
    """Partition every image, then embed each chunk's crop (as the CLIP encoder does)."""
    parents: List[int] = []
    boxes: List[List[float]] = []
    kinds: List[str] = []
    failed: List[str] = []

    def crops():
        for i, proposals, error in partition_files(paths, settings, partitioner, progress, desc):
            if error is None:
                try:
                    decoded = embedder.decode(paths[i].read_bytes(), [p.box for p in proposals])
                except (ImageLoadError, OSError) as e:
                    error = str(e)
            if error is not None:
                failed.append(f'{paths[i]}: {error}')
                continue
            for p in proposals:
                parents.append(i)
                boxes.append(p.box)
                kinds.append(p.kind)
                yield decoded.crop(p.box)

    vectors = embedder.embed_images(crops())
    return Corpus(vectors=np.asarray(vectors, dtype=np.float32),
                  parents=np.asarray(parents, dtype=np.int64),
                  boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4), kinds=kinds,
                  failed=failed)


def rows_per_method(paths: Sequence[Path], specs: Sequence[MethodSpec], partitioner: Partitioner,
                    embedder, query_vectors, score: Callable[[List[List[Match]]], dict],
                    rerank=None, rerank_queries: Optional[Sequence[Tuple]] = None,
                    aggregation: str = 'max', top_k: int = 3, progress: bool = False) -> dict:
    """One table row per partition method (and one more with the reranker, where given).

    ``rerank_queries`` holds, per query, the reranker's cache key and a callable making its
    query embedding, so a query is embedded once across methods.
    """
    rows = {}
    for spec in specs:
        started = time.perf_counter()
        corpus = build_corpus(paths, spec.settings, partitioner, embedder, progress, spec.label)
        indexed = time.perf_counter()
        rankings = [corpus.rank(v, aggregation, top_k) for v in query_vectors]
        searched = time.perf_counter()
        base = {'method': spec.label, 'settings': describe(spec), 'chunks': len(corpus.parents),
                'failed': corpus.failed}
        times = {'index': round(indexed - started, 3), 'search': round(searched - indexed, 3)}
        rows[spec.label] = {**base, 'rerank': False, 'seconds': times, **score(rankings)}
        if rerank is not None:
            before = rerank.seconds
            reranked = [rerank(ranking, key, make_query)
                        for ranking, (key, make_query) in zip(rankings, rerank_queries)]
            rows[f'{spec.label}+rerank'] = {
                **base, 'rerank': True,
                'seconds': {**times, 'rerank': round(rerank.seconds - before, 3)},
                **score(reranked)}
    return rows
