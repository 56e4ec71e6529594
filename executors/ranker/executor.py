"""Ranker executor: turns a query's chunk hits (``chunk_hits``, from the indexer) into ranked
parent images (``matches``)."""
from typing import Optional

from docarray import DocList
from jina import Executor, requests

from loupe.ann import ChunkHits
from loupe.models import choose
from loupe.params import positive_int
from loupe.rank import AGGREGATIONS, rank_hits
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
            hits, doc.chunk_hits = doc.chunk_hits, None
            if doc.error or hits is None:
                continue
            doc.matches = DocList[Match](rank_hits(ChunkHits.from_bytes(hits), **options))
        return docs

    @requests
    def passthrough(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        return docs
