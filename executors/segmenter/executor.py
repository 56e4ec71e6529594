"""Jina wrapper of loupe.segment: splits each image to index into chunks (regions) to embed."""
from docarray import DocList
from jina import requests

from loupe import model_thread
from loupe.base_executor import LoupeExecutor
from loupe.config import SegmenterSettings
from loupe.constants import ENV_DETECTOR_MODEL, ENV_DINO_MODEL
from loupe.documents import mark_error
from loupe.errors import ImageLoadError
from loupe.images import decode, source_bytes
from loupe.models import service_checkpoint
from loupe.schema import Chunk, ImageDoc
from loupe.segment import SETTING_NAMES, Partitioner, decode_side


class Segmenter(LoupeExecutor):
    """Sets blob (when empty), width, height and chunks (whole image first) of each doc."""

    settings_class = SegmenterSettings

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        s = self.settings
        self.partitioner = Partitioner(
            base=s, detector_model=service_checkpoint(s.detector_model, ENV_DETECTOR_MODEL),
            dino_model=service_checkpoint(s.dino_model, ENV_DINO_MODEL))

    @requests(on='/index')
    def index(self, docs: DocList[ImageDoc], parameters: dict = None,
              **kwargs) -> DocList[ImageDoc]:
        checked = self.check_request('/index', docs, parameters)
        if not docs:
            return docs
        # The request's parameters are shared by every executor: take only our names.
        settings = self.partitioner.resolve(
            **{k: v for k, v in checked.items() if k in SETTING_NAMES})
        side = decode_side(settings)
        ok, images = [], []
        for doc in docs:
            if doc.error:  # refused at the gateway
                continue
            try:
                data = source_bytes(doc.blob, doc.uri)
                image = decode(data, min_side=side)
            except ImageLoadError as e:
                mark_error(doc, str(e))
                doc.chunks = DocList[Chunk]()
                self.logger.warning(f'{doc.id} ({doc.uri or "blob"}): {e}')
                continue
            doc.width, doc.height = image.width, image.height
            ok.append(doc)
            images.append(image)
        proposals = model_thread.run(self.partitioner.partition, images, settings)
        for doc, found in zip(ok, proposals):
            doc.chunks = DocList[Chunk]([
                Chunk(parent_id=doc.id, box=p.box, kind=p.kind, label=p.label, score=p.score)
                for p in found])
        counts = [len(found) for found in proposals]
        for doc, n in zip(ok, counts):
            self.logger.debug(f'{doc.id}: {n} chunks')
        spread = f' (per image {min(counts)}-{max(counts)})' if counts else ''
        self.logger.info(f'{settings.method}: {len(ok)} images, {sum(counts)} chunks{spread}, '
                         f'{len(docs) - len(ok)} failed')
        return docs
