"""Ranker executor: turns a query's chunk hits into ranked parent images."""
from typing import Optional

from docarray import DocList
from jina import requests

from loupe.base_executor import LoupeExecutor
from loupe.config import RankerSettings
from loupe.rank import rank_parents
from loupe.schema import ImageDoc, Match


class Ranker(LoupeExecutor):
    settings_class = RankerSettings

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
            doc.matches = DocList[Match](rank_parents(doc.matches, **options))
        return docs
