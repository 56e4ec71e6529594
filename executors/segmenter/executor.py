"""Jina wrapper of loupe.segment: splits each image to index into chunks (regions) to embed."""
from typing import Optional

from docarray import DocList
from jina import Executor, requests

from loupe import model_thread
from loupe.docs import mark_error
from loupe.errors import ImageLoadError
from loupe.images import decode, source_bytes
from loupe.schema import Chunk, ImageDoc
from loupe.segment import SETTING_NAMES, Partitioner, Settings, chunk_counts, decode_side


class Segmenter(Executor):
    """Sets blob (when empty), width, height and chunks (whole image first) of each doc."""

    def __init__(self, method: str = Settings.method, grid_rows: int = Settings.grid_rows,
                 grid_cols: int = Settings.grid_cols,
                 grid_overlap: float = Settings.grid_overlap,
                 grid_levels: int = Settings.grid_levels,
                 detector_model: Optional[str] = Settings.detector_model,
                 detector_threshold: float = Settings.detector_threshold,
                 dino_model: Optional[str] = Settings.dino_model,
                 dino_mode: str = Settings.dino_mode, dino_mass: float = Settings.dino_mass,
                 dino_size: int = Settings.dino_size,
                 min_box_area: float = Settings.min_box_area,
                 nms_iou: float = Settings.nms_iou, max_boxes: int = Settings.max_boxes,
                 device: str = Settings.device, batch_size: int = Settings.batch_size,
                 **kwargs):
        super().__init__(**kwargs)
        self.partitioner = Partitioner(
            method=method, grid_rows=grid_rows, grid_cols=grid_cols, grid_overlap=grid_overlap,
            grid_levels=grid_levels, detector_model=detector_model,
            detector_threshold=detector_threshold, dino_model=dino_model, dino_mode=dino_mode,
            dino_mass=dino_mass, dino_size=dino_size, min_box_area=min_box_area,
            nms_iou=nms_iou, max_boxes=max_boxes, device=device, batch_size=batch_size)

    @requests(on='/index')
    def index(self, docs: DocList[ImageDoc], parameters: dict = None,
              **kwargs) -> DocList[ImageDoc]:
        if not docs:
            return docs
        parameters = parameters or {}
        # The request's parameters are shared by every executor: take only our names.
        settings = self.partitioner.resolve(
            **{k: parameters[k] for k in SETTING_NAMES if k in parameters})
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
        counts = chunk_counts(proposals)
        for doc, n in zip(ok, counts):
            self.logger.debug(f'{doc.id}: {n} chunks')
        spread = f' (per image {min(counts)}-{max(counts)})' if counts else ''
        self.logger.info(f'{settings.method}: {len(ok)} images, {sum(counts)} chunks{spread}, '
                         f'{len(docs) - len(ok)} failed')
        return docs

    @requests
    def passthrough(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        return docs
