"""Chunk indexer executor: stores chunk vectors per image and finds the chunks closest to a query.

Storage: ``<workspace>/chunks/`` (see loupe.ann). After /index the chunk vectors are dropped
from the returned docs (the blob is kept for root storage downstream): they are stored, nothing
downstream reads them, and they are most of the response's size.
"""
from typing import Optional

import numpy as np
from docarray import DocList
from jina import Executor, requests

from loupe.ann import ChunkIndex
from loupe.constants import SCORE_CHUNK, SOURCE_CHUNK, STATUS_MISSING
from loupe.docs import mark_error
from loupe.errors import InvalidRequestError
from loupe.params import positive_int
from loupe.schema import ImageDoc, Match
from loupe.settings import executor_workspace
from loupe.shard import Shard

INDEX_DIR = 'chunks'


class ChunkIndexer(Executor):
    def __init__(self, precision: str = 'f16', connectivity: int = 16, expansion_add: int = 128,
                 expansion_search: int = 256, limit: int = 10, chunk_limit: Optional[int] = None,
                 save_every: Optional[int] = 10_000, rebuild: bool = False, **kwargs):
        """``chunk_limit`` None fetches max(100, 10 * limit) chunk hits per query.

        Structural settings of an existing index win over these unless ``rebuild``.
        """
        super().__init__(**kwargs)
        self.shard = Shard.of(self)  # a shard indexes only the images it owns
        self.limit = positive_int(None, 'limit', limit)
        self.chunk_limit = None if chunk_limit is None else positive_int(
            None, 'chunk_limit', chunk_limit)
        self.chunk_index = ChunkIndex(
            executor_workspace(self) / INDEX_DIR, precision=precision, connectivity=connectivity,
            expansion_add=expansion_add, expansion_search=expansion_search, save_every=save_every,
            rebuild=rebuild)

    @requests(on='/index')
    def index(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        items = []
        for doc in docs or ():
            if doc.error or not self.shard.owns(doc.id):
                continue
            if any(chunk.embedding is None for chunk in doc.chunks):
                mark_error(doc, 'chunks without embeddings cannot be indexed')
                continue
            items.append((doc.id, doc.chunks, doc.tags))
        stored = self.chunk_index.upsert_many(items)
        if items:
            self.logger.info(f'indexed {stored} chunks of {len(items)} images')
        for doc in docs or ():
            for chunk in doc.chunks:
                chunk.embedding = None
        self.shard.stamp(docs)
        return docs

    @requests(on='/search')
    def search(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        parameters = parameters or {}
        limit = positive_int(parameters, 'limit', self.limit)
        chunk_limit = parameters.get('chunk_limit', self.chunk_limit)
        chunk_limit = (max(100, 10 * limit) if chunk_limit is None
                       else positive_int(None, 'chunk_limit', chunk_limit))
        self.shard.stamp(docs, k=chunk_limit)
        queries = [doc for doc in docs or () if not doc.error and doc.embedding is not None]
        if not queries:
            return docs
        vectors = [np.asarray(doc.embedding, dtype=np.float32).ravel() for doc in queries]
        sizes = sorted({vector.size for vector in vectors})
        if len(sizes) > 1:
            raise InvalidRequestError(f'query embeddings of one request differ in size: {sizes}')
        hits = self.chunk_index.search(np.stack(vectors), chunk_limit, parameters.get('filter'))
        for doc, doc_hits in zip(queries, hits):
            # construct: the values are already of the fields' types, and validating a hundred
            # hits per query costs more than the search itself.
            doc.matches = DocList[Match](
                Match.construct(parent_id=hit.parent_id, score=hit.similarity,
                                scores={SCORE_CHUNK: hit.similarity}, highlight_box=hit.box,
                                highlight_source=SOURCE_CHUNK, chunk_kind=hit.kind)
                for hit in doc_hits)
        return docs

    @requests(on='/delete')
    def delete(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        removed = self.chunk_index.delete(doc.id for doc in self.shard.mine(docs))
        self.logger.info(f'removed {removed} chunks')
        self.shard.stamp(docs)
        return docs

    @requests(on='/update')
    def update(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        """Tags merged (and ``untag`` keys dropped) where filters read them; vectors stay."""
        untag = (parameters or {}).get('untag') or []
        if not isinstance(untag, (list, tuple)) or not all(isinstance(k, str) for k in untag):
            raise InvalidRequestError(f'untag must be a list of tag names, got {untag!r}')
        self.chunk_index.merge_tags({doc.id: dict(doc.tags) for doc in self.shard.mine(docs)},
                                    untag)
        self.shard.stamp(docs)
        return docs

    @requests(on='/exists')
    def exists(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        # An image whose chunks are not here (its encoding failed after storage kept it) must
        # be indexed again, whatever root storage says.
        mine = self.shard.mine(docs)
        known = self.chunk_index.known_parents(doc.id for doc in mine)
        for doc in mine:
            if doc.id not in known:
                doc.status = STATUS_MISSING
        self.shard.stamp(docs)
        return docs

    @requests
    def passthrough(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        return docs

    def close(self) -> None:
        self.chunk_index.close()
        super().close()
