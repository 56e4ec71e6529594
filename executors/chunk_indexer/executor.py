"""Chunk indexer executor: stores chunk vectors per image and finds the chunks closest to a query.

Storage: ``<workspace>/chunks/`` (see loupe.ann). A search's hits go to the ranker in
``chunk_hits`` (compact arrays). After /index the chunk vectors are dropped
from the returned docs (the blob is kept for root storage downstream): they are stored, nothing
downstream reads them, and they are most of the response's size.
"""
from typing import Optional

import numpy as np
from docarray import DocList
from jina import Executor, requests

from loupe.ann import ChunkIndex
from loupe.constants import STATUS_MISSING
from loupe.docs import mark_error
from loupe.errors import InvalidRequestError, StorageFullError
from loupe.params import positive_int
from loupe.schema import ImageDoc
from loupe.settings import executor_workspace

INDEX_DIR = 'chunks'


class ChunkIndexer(Executor):
    def __init__(self, precision: str = 'f16', connectivity: int = 16, expansion_add: int = 128,
                 expansion_search: int = 256, limit: int = 10, chunk_limit: Optional[int] = None,
                 save_every: Optional[int] = 10_000, rebuild: bool = False, **kwargs):
        """``chunk_limit`` None fetches max(100, 10 * limit) chunk hits per query.

        Structural settings of an existing index win over these unless ``rebuild``.
        """
        super().__init__(**kwargs)
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
            if doc.error:
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
        if items:
            self.logger.info(f'indexed {stored} chunks of {len(items)} images')
        for doc in docs or ():
            for chunk in doc.chunks:
                chunk.embedding = None
        return docs

    @requests(on='/search')
    def search(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        parameters = parameters or {}
        limit = positive_int(parameters, 'limit', self.limit)
        chunk_limit = parameters.get('chunk_limit', self.chunk_limit)
        chunk_limit = (max(100, 10 * limit) if chunk_limit is None
                       else positive_int(None, 'chunk_limit', chunk_limit))
        queries = [doc for doc in docs or () if not doc.error and doc.embedding is not None]
        if not queries:
            return docs
        vectors = [np.asarray(doc.embedding, dtype=np.float32).ravel() for doc in queries]
        sizes = sorted({vector.size for vector in vectors})
        if len(sizes) > 1:
            raise InvalidRequestError(f'query embeddings of one request differ in size: {sizes}')
        hits = self.chunk_index.search(np.stack(vectors), chunk_limit, parameters.get('filter'))
        for doc, doc_hits in zip(queries, hits):
            # One bytes field, not a Match document per hit: each hop re-encodes what it carries.
            doc.chunk_hits = doc_hits.to_bytes()
        return docs

    @requests(on='/delete')
    def delete(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        removed = self.chunk_index.delete(doc.id for doc in docs or ())
        self.logger.info(f'removed {removed} chunks')
        return docs

    @requests(on='/update')
    def update(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        """Tags merged (and ``untag`` keys dropped) where filters read them; vectors stay."""
        untag = (parameters or {}).get('untag') or []
        if not isinstance(untag, (list, tuple)) or not all(isinstance(k, str) for k in untag):
            raise InvalidRequestError(f'untag must be a list of tag names, got {untag!r}')
        self.chunk_index.merge_tags({doc.id: dict(doc.tags) for doc in docs or ()}, untag)
        return docs

    @requests(on='/exists')
    def exists(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        # An image whose chunks are not here (its encoding failed after storage kept it) must
        # be indexed again, whatever root storage says.
        known = self.chunk_index.known_parents(doc.id for doc in docs or ())
        for doc in docs or ():
            if doc.id not in known:
                doc.status = STATUS_MISSING
        return docs

    @requests
    def passthrough(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        return docs

    def close(self) -> None:
        self.chunk_index.close()
        super().close()
