"""Ranker executor: turns a query's chunk hits into ranked parent images.

Only images with a parent record in the root store (read-only at ``image_store``, by default
where the flows' root storage writes) are ranked: chunks whose image was never completely
written (a run killed between the chunk index and the root store) take no result's slot.
"""
from typing import Optional

from docarray import DocList
from jina import Executor, requests

from loupe.models import choose
from loupe.params import positive_int
from loupe.rank import AGGREGATIONS, rank_parents
from loupe.schema import ImageDoc, Match
from loupe.settings import default_store_path
from loupe.store import StoreReader


class Ranker(Executor):
    def __init__(self, aggregation: str = 'max', top_k: int = 3, limit: int = 10,
                 image_store: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        choose(AGGREGATIONS, aggregation, 'aggregation')  # fail at start-up, not at first query
        self.aggregation, self.top_k, self.limit = aggregation, top_k, limit
        self.parents = StoreReader(image_store or default_store_path())

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
            hits = doc.matches
            stored = self.parents.stored({hit.parent_id for hit in hits})
            if stored is not None:
                hits = [hit for hit in hits if hit.parent_id in stored]
            doc.matches = DocList[Match](rank_parents(hits, **options))
        return docs

    def close(self) -> None:
        self.parents.close()
        super().close()

    @requests
    def passthrough(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        return docs
