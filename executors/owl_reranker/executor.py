"""OWL-ViT reranker executor: re-scores a query's top results by detecting the query in them.

Off unless the flow (``rerank: true``) or a request (``parameters={'rerank': True}``) turns it on.
Images come from the root store's previews (LMDB at ``image_store``, opened read-only); a result
whose preview cannot be had keeps its first-stage score and box (a stored uri is never read).
Scores combine as documented in ``loupe.rerank``.
"""
import threading
from typing import List, Optional

import lmdb
from docarray import DocList
from jina import Executor, requests

from loupe import model_thread
from loupe.boxes import to_list
from loupe.constants import SCORE_CHUNK, SCORE_FINAL, SCORE_RERANK, SOURCE_RERANKER
from loupe.errors import ImageLoadError, InvalidRequestError
from loupe.images import DecodedImage, decode, source_bytes
from loupe.params import positive_int
from loupe.rerank import (DEFAULT_RERANK_WEIGHT, MIN_DETECTION_SCORE, Reranker, box_is_evidence,
                          check_weight, combine_scores)
from loupe.schema import ImageDoc, Match
from loupe.settings import default_store_path
from loupe.shard import readonly_store
from loupe.store import RootStore, StoredImage

_TRUE, _FALSE = {'true', '1', 'yes', 'on'}, {'false', '0', 'no', 'off', ''}


def _flag(name: str, value) -> bool:
    if isinstance(value, bool) or value is None:
        return bool(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidRequestError(f'{name} must be true or false, got {value!r}')


class OwlReranker(Executor):
    def __init__(self, model: Optional[str] = None, rerank: bool = False, rerank_top_k: int = 10,
                 rerank_weight: float = DEFAULT_RERANK_WEIGHT, batch_size: int = 8,
                 device: str = 'auto', half: bool = False, image_store: Optional[str] = None,
                 min_detection_score: float = MIN_DETECTION_SCORE, **kwargs):
        super().__init__(**kwargs)
        self.min_detection_score = float(min_detection_score)
        # Validate the defaults now: fail at start-up, not at the first query that reranks.
        self.rerank = _flag('rerank', rerank)
        self.rerank_top_k = positive_int(None, 'rerank_top_k', rerank_top_k)
        self.rerank_weight = check_weight(rerank_weight)
        self.reranker = Reranker(model, device=device, half=half, batch_size=batch_size)
        # By default, where the flows' root storage writes ($LOUPE_WORKSPACE/RootStorage/images).
        self.image_store = image_store or str(default_store_path())
        self._store: Optional[RootStore] = None
        self._store_lock = threading.Lock()

    @requests(on='/search')
    def search(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        parameters = parameters or {}
        if not docs or not _flag('rerank', parameters.get('rerank', self.rerank)):
            return docs
        top_k = positive_int(parameters, 'rerank_top_k', self.rerank_top_k)
        weight = check_weight(parameters.get('rerank_weight', self.rerank_weight))
        for doc in docs:
            if doc.error or not doc.matches:
                continue
            try:
                model_thread.run(self._rerank, doc, top_k, weight)
            except ImageLoadError as e:  # the query image: the encoder will have said so too
                self.logger.warning(f'query {doc.id}: not reranked: {e}')
        return docs

    @requests
    def passthrough(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        return docs

    def _rerank(self, doc: ImageDoc, top_k: int, weight: float) -> None:
        has_text = bool(doc.text and doc.text.strip())
        if not has_text and not (doc.blob or doc.uri):
            return
        head, tail = list(doc.matches[:top_k]), list(doc.matches[top_k:])
        found = [(m, im) for m, im in zip(head, self._images(head)) if im is not None]
        if not found:
            return
        if has_text:
            query = self.reranker.text_query(doc.text)
        else:
            query = self.reranker.image_query(
                decode(source_bytes(doc.blob, doc.uri), min_side=self.reranker.input_size))
        detections = self.reranker.detect([im for _, im in found], query)
        for (match, _), detection in zip(found, detections):
            first_stage = match.scores.get(SCORE_CHUNK, match.score)
            match.score = combine_scores(first_stage, detection.score, weight)
            match.scores[SCORE_RERANK] = detection.score
            match.scores[SCORE_FINAL] = match.score
            if box_is_evidence(detection, self.min_detection_score):
                match.highlight_box = to_list(detection.box)
                match.highlight_source = SOURCE_RERANKER
        head.sort(key=lambda m: m.score, reverse=True)
        doc.matches = DocList[Match](head + tail)

    def _images(self, matches: List[Match]) -> List[Optional[DecodedImage]]:
        store = self._open_store()
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

    def _open_store(self) -> Optional[RootStore]:
        """The root store, opened on first use; retried per request until it exists."""
        if self._store is None and self.image_store:
            with self._store_lock:
                if self._store is None:
                    try:
                        self._store = readonly_store(self.image_store)
                    except (FileNotFoundError, lmdb.Error) as e:
                        self.logger.warning(f'no image store at {self.image_store} ({e}); '
                                            f'reranking only results with a readable uri')
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        super().close()
