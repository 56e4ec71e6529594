"""Ranker executor: turns a query's chunk hits into ranked parent images."""
from typing import Optional

from docarray import DocList
from jina import Executor, requests

from loupe.models import choose
from loupe.params import positive_int
from loupe.rank import AGGREGATIONS, rank_parents
from loupe.schema import ImageDoc, Match


class Ranker(Executor):
    def __init__(self, aggregation: str = 'max', top_k: int = 3, limit: int = 10, **kwargs):
        super().__init__(**kwargs)
        choose(AGGREGATIONS, aggregation, 'aggregation')  # fail at start-up, not at first query
        self.aggregation, self.top_k, self.limit = aggregation, top_k, limit

    @requests(on='/search')
    def rank(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
             **kwargs) -> DocList[ImageDoc]:
        parameters = parameters or {}
        options = dict(aggregation=parameters.get('aggregation', self.aggregation),
                       top_k=positive_int(parameters, 'top_k', self.top_k),
                       limit=positive_int(parameters, 'limit', self.limit))
        for doc in docs or ():
            if doc.error:
                continue
            doc.matches = DocList[Match](rank_parents(doc.matches, **options))
        return docs

    @requests
    def passthrough(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        return docs
