"""Ranker executor: turns a query's chunk hits (``chunk_hits``, from the indexer) into ranked
parent images (``matches``).

Only images with a parent record in the parent store (read-only at ``image_store``, by default
where the flows' parent storage writes) are ranked: chunks whose image was never completely
written (a run killed between the chunk index and the parent store) take no result's slot.
"""
from typing import Optional

from docarray import DocList
from jina import requests

from loupe.ann import ChunkHits
from loupe.base_executor import LoupeExecutor
from loupe.config import RankerSettings
from loupe.rank import rank_hits
from loupe.schema import ImageDoc, Match
from loupe.paths import default_store_path
from loupe.store import StoreReader


class Ranker(LoupeExecutor):
    settings_class = RankerSettings

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.parents = self.own(StoreReader(self.settings.image_store or default_store_path()))

    @requests(on='/search')
    def rank(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
             **kwargs) -> DocList[ImageDoc]:
        checked = self.check_request('/search', docs, parameters)
        s = self.settings
        options = dict(aggregation=checked.get('aggregation', s.aggregation),
                       top_k=checked.get('top_k', s.top_k), limit=checked.get('limit', s.limit))
        for doc in docs or ():
            hits, doc.chunk_hits = doc.chunk_hits, None
            if doc.error or hits is None:
                continue
            hits = ChunkHits.from_bytes(hits)
            stored = self.parents.stored(set(hits.parent_ids))
            if stored is not None:
                hits = hits.take([i for i, p in enumerate(hits.parent_ids) if p in stored])
            doc.matches = DocList[Match](rank_hits(hits, **options))
        return docs
