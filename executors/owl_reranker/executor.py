"""OWL-ViT reranker executor: re-scores a query's top results by detecting the query in them.

Off unless the flow (``rerank: true``) or a request (``parameters={'rerank': True}``) turns it on.
Images come from the parent store's previews (LMDB at ``image_store``, opened read-only); a result
whose preview cannot be had keeps its first-stage score and box (a stored uri is never read).
Scores combine as documented in ``loupe.rerank``.
"""
from typing import List, Optional

from docarray import DocList
from jina import requests

from loupe import model_thread
from loupe.base_executor import LoupeExecutor
from loupe.config import RerankerSettings
from loupe.constants import ENV_OWL_MODEL
from loupe.errors import ImageLoadError
from loupe.images import DecodedImage, decode, source_bytes
from loupe.models import service_checkpoint
from loupe.paths import default_store_path
from loupe.rerank import Detection, Reranker, rerank_matches
from loupe.schema import ImageDoc, Match
from loupe.store import StoreReader, StoredImage

class OwlReranker(LoupeExecutor):
    settings_class = RerankerSettings

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        s = self.settings
        self.reranker = Reranker(service_checkpoint(s.model, ENV_OWL_MODEL), device=s.device,
                                 half=s.half, batch_size=s.batch_size)
        # By default where the flows' parent storage writes: loupe.paths.default_store_path.
        self.image_store = s.image_store or str(default_store_path())
        self.parents = self.own(StoreReader(self.image_store))

    @requests(on='/search')
    def search(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        checked = self.check_request('/search', docs, parameters)
        s = self.settings
        if not docs or not checked.get('rerank', s.rerank):
            return docs
        top_k = checked.get('rerank_top_k', s.rerank_top_k)
        weight = checked.get('rerank_weight', s.rerank_weight)
        for doc in docs:
            if doc.error or not doc.matches:
                continue
            try:
                model_thread.run(self._rerank, doc, top_k, weight)
            except ImageLoadError as e:  # the query image: the encoder will have said so too
                self.logger.warning(f'query {doc.id}: not reranked: {e}')
        return docs

    def _rerank(self, doc: ImageDoc, top_k: int, weight: float) -> None:
        has_text = bool(doc.text and doc.text.strip())
        if not has_text and not (doc.blob or doc.uri):
            return

        def detect(head: List[Match]) -> List[Optional[Detection]]:
            images = self._images(head)
            found = [i for i, image in enumerate(images) if image is not None]
            out: List[Optional[Detection]] = [None] * len(head)
            if not found:
                return out
            if has_text:
                query = self.reranker.text_query(doc.text)
            else:
                query = self.reranker.image_query(
                    decode(source_bytes(doc.blob, doc.uri),
                           min_side=self.reranker.input_size))
            for i, detection in zip(found, self.reranker.detect([images[i] for i in found],
                                                                query)):
                out[i] = detection
            return out

        doc.matches = DocList[Match](rerank_matches(doc.matches, top_k, detect, weight,
                                                    self.settings.min_detection_score))

    def _images(self, matches: List[Match]) -> List[Optional[DecodedImage]]:
        store = self.parents.get()
        if store is None:
            self.logger.warning(f'no image store at {self.image_store} yet; reranking only '
                                'results with a readable uri')
        records = store.get_many([m.parent_id for m in matches]) if store else {}
        return [self._image(m, records.get(m.parent_id)) for m in matches]

    def _image(self, match: Match, record: Optional[StoredImage]) -> Optional[DecodedImage]:
        if record is not None and record.preview:
            try:
                preview = decode(record.preview)
                # Boxes found on the preview map to the original through the record's size.
                return DecodedImage(image=preview.image, width=record.width, height=record.height)
            except ImageLoadError as e:
                self.logger.warning(f'{match.parent_id}: bad preview in the store: {e}')
        return None  # a stored uri is a label: the service does not read it
