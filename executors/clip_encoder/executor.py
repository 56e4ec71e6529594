"""Jina wrapper of loupe.embedder: chunk embeddings at /index, query embeddings at /search."""
from typing import Iterator, List, Optional

from docarray import DocList
from jina import requests
from PIL import Image

from loupe import model_thread
from loupe.base_executor import LoupeExecutor
from loupe.boxes import as_boxes
from loupe.config import EncoderSettings
from loupe.constants import ENV_CLIP_MODEL
from loupe.documents import mark_error
from loupe.embedder import Embedder
from loupe.errors import ImageLoadError, InvalidRequestError
from loupe.images import source_bytes
from loupe.models import service_checkpoint
from loupe.query import combine
from loupe.schema import Chunk, ImageDoc


class ClipEncoder(LoupeExecutor):
    """Sets ``chunk.embedding`` for every chunk at /index and ``doc.embedding`` at /search."""

    settings_class = EncoderSettings

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        s = self.settings
        self.embedder = Embedder(service_checkpoint(s.model, ENV_CLIP_MODEL),
                                 batch_size=s.batch_size, device=s.device,
                                 precision=s.precision, backend=s.backend, workers=s.workers)

    @requests(on='/index')
    def index(self, docs: DocList[ImageDoc], parameters: dict = None,
              **kwargs) -> DocList[ImageDoc]:
        self.check_request('/index', docs, parameters)
        if not docs:
            return docs
        chunks: List[Chunk] = []
        # One batch stream across all docs of the request: small docs fill each other's batches.
        embeddings = model_thread.run(self.embedder.embed_images, self._crops(docs, chunks))
        for chunk, embedding in zip(chunks, embeddings):
            chunk.embedding = embedding
        return docs

    def _crops(self, docs: DocList[ImageDoc], chunks: List[Chunk]) -> Iterator[Image.Image]:
        """Crops of every chunk, in order, appending each chunk to ``chunks`` as it is yielded.
        Images are decoded on the embedder's decode workers."""
        for doc, decoded in self.embedder.map(self._decode, docs):
            if decoded is None:
                continue
            for chunk, box in zip(doc.chunks, as_boxes([c.box for c in doc.chunks])):
                chunks.append(chunk)
                yield decoded.crop(box)

    def _decode(self, doc: ImageDoc):
        """(doc, its image decoded for its chunk boxes), or (doc, None) when it has none or
        cannot be read (then marked with the reason)."""
        if doc.error or not doc.chunks:
            return doc, None
        if any(len(chunk.box) != 4 for chunk in doc.chunks):
            mark_error(doc, 'a chunk has no [x1, y1, x2, y2] box')
            return doc, None
        try:
            return doc, self.embedder.decode(source_bytes(doc.blob, doc.uri),
                                             [c.box for c in doc.chunks])
        except ImageLoadError as e:
            mark_error(doc, str(e))
            return doc, None

    @requests(on='/search')
    def search(self, docs: DocList[ImageDoc], parameters: dict = None,
               **kwargs) -> DocList[ImageDoc]:
        self.check_request('/search', docs, parameters)
        return self._embed_queries(docs)

    def _embed_queries(self, docs: DocList[ImageDoc]) -> DocList[ImageDoc]:
        if not docs:
            return docs
        text_docs, image_docs = [], []
        for doc in docs:
            if doc.error:
                continue
            if doc.terms:
                self._embed_terms(doc)
            elif doc.text and doc.text.strip():
                text_docs.append(doc)
            elif doc.blob or doc.uri:
                image_docs.append(doc)
            else:
                doc.error = 'empty query: give a non-blank text or an image'
        if text_docs:
            embeddings = model_thread.run(self.embedder.embed_texts,
                                          [d.text.strip() for d in text_docs])
            for doc, embedding in zip(text_docs, embeddings):
                doc.embedding = embedding
        embedded: List[ImageDoc] = []
        embeddings = model_thread.run(self.embedder.embed_images,
                                      self._query_images(image_docs, embedded))
        for doc, embedding in zip(embedded, embeddings):
            doc.embedding = embedding
        return docs

    def _embed_terms(self, doc: ImageDoc) -> None:
        """A composite query: the normalised weighted sum of its terms' embeddings."""
        texts = [t for t in doc.terms if t.text and t.text.strip()]
        images = [t for t in doc.terms if not (t.text and t.text.strip())]
        vectors = list(model_thread.run(self.embedder.embed_texts,
                                        [t.text.strip() for t in texts])) if texts else []
        for term in images:
            if not (term.blob or term.uri):
                doc.error = 'empty query: a term has neither text nor image'
                return
            try:
                decoded = self.embedder.decode(source_bytes(term.blob, term.uri))
            except ImageLoadError as e:
                doc.error = f'cannot read a query image: {e}'
                return
            vectors.extend(model_thread.run(self.embedder.embed_images, [decoded.image], 1))
        try:
            doc.embedding = combine(vectors, [t.weight for t in texts + images])
        except InvalidRequestError as e:
            doc.error = str(e)

    @requests(on='/map')
    def map(self, docs: DocList[ImageDoc], parameters: dict = None,
            **kwargs) -> DocList[ImageDoc]:
        """A map is coloured by similarity to a text query, when the request has one."""
        self.check_request('/map', docs, parameters)
        texts = DocList[ImageDoc](d for d in docs or () if d.text and d.text.strip())
        if texts:
            self._embed_queries(texts)
        return docs

    def _query_images(self, docs: List[ImageDoc], embedded: List[ImageDoc]) -> Iterator[Image.Image]:
        for doc in docs:
            try:
                decoded = self.embedder.decode(source_bytes(doc.blob, doc.uri))
            except ImageLoadError as e:
                doc.error = f'cannot read the query image: {e}'
                continue
            embedded.append(doc)
            yield decoded.image
