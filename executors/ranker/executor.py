"""Ranker executor: turns a query's chunk hits into ranked parent images.

Only images with a parent record in the root store (read-only at ``image_store``, by default
where the flows' root storage writes) are ranked: chunks whose image was never completely
written (a run killed between the chunk index and the root store) take no result's slot.
"""
from typing import Optional

from docarray import DocList
from jina import requests

from loupe.base_executor import LoupeExecutor
from loupe.config import RankerSettings
from loupe.rank import rank_parents
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
            if doc.error:
                continue
            hits = doc.matches
            stored = self.parents.stored({hit.parent_id for hit in hits})
            if stored is not None:
                hits = [hit for hit in hits if hit.parent_id in stored]
            doc.matches = DocList[Match](rank_parents(hits, **options))
        return docs
