"""Chunk indexer executor: stores chunk vectors per image and finds the chunks closest to a query.

Storage: ``<workspace>/chunks/`` (see loupe.ann). A search's hits go to the ranker in
``chunk_hits`` (compact arrays). After /index the chunk vectors are dropped
from the returned docs (the blob is kept for parent storage downstream): they are stored, nothing
downstream reads them, and they are most of the response's size.
"""
from typing import Optional

import numpy as np
from docarray import DocList
from jina import requests

from loupe.ann import ChunkIndex
from loupe.base_executor import LoupeExecutor
from loupe.config import IndexerSettings
from loupe.constants import STATUS_MISSING
from loupe.documents import mark_error
from loupe.errors import InvalidRequestError, StorageFullError
from loupe.paths import executor_workspace
from loupe.explore import endpoints as explore
from loupe.schema import ImageDoc
from loupe.shard import Shard

INDEX_DIR = 'chunks'


class ChunkIndexer(LoupeExecutor):
    """Structural settings of an existing index win over the YAML's unless ``rebuild``."""

    settings_class = IndexerSettings

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shard = Shard.of(self)  # a shard indexes only the images it owns
        s = self.settings
        self.chunk_index = self.own(ChunkIndex(
            executor_workspace(self) / INDEX_DIR, precision=s.precision,
            connectivity=s.connectivity, expansion_add=s.expansion_add,
            expansion_search=s.expansion_search, save_every=s.save_every, rebuild=s.rebuild))
        self.whole = explore.whole_vectors(self.chunk_index)

    @requests(on='/index')
    def index(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
              **kwargs) -> DocList[ImageDoc]:
        self.check_request('/index', docs, parameters)
        items = []
        for doc in docs or ():
            if doc.error or not self.shard.owns(doc.id):
                continue
            if any(chunk.embedding is None for chunk in doc.chunks):
                mark_error(doc, 'chunks without embeddings cannot be indexed')
                continue
            items.append((doc.id, doc.chunks, doc.tags))
        try:
            stored = self.chunk_index.upsert_many(items)
        except StorageFullError as e:  # nothing was stored: every item of the write failed
            attempted = {item[0] for item in items}
            for doc in docs:
                if not doc.error and doc.id in attempted:
                    mark_error(doc, str(e))
            stored = 0
        self.whole.invalidate()
        if items:
            self.logger.info(f'indexed {stored} chunks of {len(items)} images')
        for doc in docs or ():
            for chunk in doc.chunks:
                chunk.embedding = None
        self.shard.stamp('/index', docs)
        return docs

    @requests(on='/search')
    def search(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        checked = self.check_request('/search', docs, parameters)
        limit = checked.get('limit', self.settings.limit)
        chunk_limit = checked.get('chunk_limit', self.settings.chunk_limit)
        if chunk_limit is None:
            chunk_limit = max(100, 10 * limit)
        self.shard.stamp('/search', docs, k=chunk_limit)  # the merger cuts the shards' hits to it
        queries = [doc for doc in docs or () if not doc.error and doc.embedding is not None]
        if not queries:
            return docs
        vectors = [np.asarray(doc.embedding, dtype=np.float32).ravel() for doc in queries]
        sizes = sorted({vector.size for vector in vectors})
        if len(sizes) > 1:
            raise InvalidRequestError(f'query embeddings of one request differ in size: {sizes}')
        hits = self.chunk_index.search(np.stack(vectors), chunk_limit, checked.get('filter'))
        for doc, doc_hits in zip(queries, hits):
            # One bytes field, not a Match document per hit: each hop re-encodes what it carries.
            doc.chunk_hits = doc_hits.to_bytes()
        return docs

    @requests(on='/recommend')
    def recommend(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
                  **kwargs) -> DocList[ImageDoc]:
        if self.shard.sharded:
            return explore.refuse_sharded('/recommend', docs, self.shard)
        return explore.recommend(self.whole, docs, parameters)

    @requests(on='/duplicates')
    def duplicates(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
                   **kwargs) -> DocList[ImageDoc]:
        if self.shard.sharded:
            return explore.refuse_sharded('/duplicates', docs, self.shard)
        return explore.semantic_edges(self.whole, docs, parameters)

    @requests(on='/map')
    def map(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
            **kwargs) -> DocList[ImageDoc]:
        if self.shard.sharded:
            return explore.refuse_sharded('/map', docs, self.shard)
        return explore.project(self.whole, docs, parameters)

    @requests(on='/delete')
    def delete(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        self.check_request('/delete', docs, parameters)
        removed = self.chunk_index.delete(doc.id for doc in self.shard.mine(docs))
        self.whole.invalidate()
        self.logger.info(f'removed {removed} chunks')
        self.shard.stamp('/delete', docs)
        return docs

    @requests(on='/update')
    def update(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        """Tags merged (and ``untag`` keys dropped) where filters read them; vectors stay."""
        untag = self.check_request('/update', docs, parameters).get('untag', [])
        self.chunk_index.merge_tags({doc.id: dict(doc.tags) for doc in self.shard.mine(docs)},
                                    untag)
        self.shard.stamp('/update', docs)
        return docs

    @requests(on='/exists')
    def exists(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        self.check_request('/exists', docs, parameters)
        # An image whose chunks are not here (its encoding failed after storage kept it) must
        # be indexed again, whatever parent storage says.
        mine = self.shard.mine(docs)
        known = self.chunk_index.known_parents(doc.id for doc in mine)
        for doc in mine:
            if doc.id not in known:
                doc.status = STATUS_MISSING
        self.shard.stamp('/exists', docs)
        return docs
