"""CLIP embeddings of texts, images and image regions, equal to transformers' reference pipeline.

Reference: ``CLIPProcessor`` (PIL backend) + ``CLIPModel`` -> ``text_embeds`` / ``image_embeds``,
L2-normalised. Images are preprocessed here rather than by the processor: the same PIL resize and
center crop, but without its per-image numpy/PIL round trips and float64 rescaling, and the
normalisation runs once per batch on the model's device.
"""
import math
from itertools import islice
from typing import Iterable, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, CLIPModel

from loupe.boxes import as_boxes
from loupe.config import EncoderSettings, spec_of
from loupe.constants import DEFAULT_CLIP_MODEL, ENV_CLIP_MODEL
from loupe.errors import ModelLoadError
from loupe.images import DecodedImage, decode, image_size
from loupe.models import from_pretrained, resolve_checkpoint, resolve_device, resolve_dtype


_BATCH_SIZE = spec_of(EncoderSettings, 'batch_size')


def draft_min_side(input_size: int, width: int, height: int, boxes=None) -> int:
    """Shorter side to decode an image at so that its smallest box still spans ``input_size``."""
    smallest = min(width, height)
    b = as_boxes(boxes if boxes is not None else [])
    if len(b):
        sides = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        smallest = min(smallest, max(float(sides.min()), 1.0))
    return math.ceil(input_size * min(width, height) / smallest)


class _Pixels:
    """The PIL processor's resize (shortest edge) -> center crop, to uint8 HWC arrays."""

    def __init__(self, image_processor):
        ip = image_processor
        self.shortest_edge = ip.size.shortest_edge if ip.do_resize else None
        self.crop = (ip.crop_size.height, ip.crop_size.width) if ip.do_center_crop else None
        self.resample = ip.resample
        factor = ip.rescale_factor if ip.do_rescale else 1.0
        mean = np.asarray(ip.image_mean if ip.do_normalize else 0.0, dtype=np.float64)
        std = np.asarray(ip.image_std if ip.do_normalize else 1.0, dtype=np.float64)
        # x * factor, then (x - mean) / std, folded into one multiply-add per batch.
        self.scale = torch.tensor(factor / std * np.ones(3), dtype=torch.float32).view(1, 3, 1, 1)
        self.shift = torch.tensor(mean / std * np.ones(3), dtype=torch.float32).view(1, 3, 1, 1)

    @staticmethod
    def supports(ip) -> bool:
        """Configs whose output this class reproduces exactly; others go through the processor."""
        size, crop = ip.size, ip.crop_size
        return (ip.do_resize and bool(size.shortest_edge) and not size.longest_edge
                and ip.do_center_crop and crop.height <= size.shortest_edge
                and crop.width <= size.shortest_edge and not getattr(ip, 'do_pad', False))

    def __call__(self, image: Image.Image) -> np.ndarray:
        if image.mode != 'RGB':
            image = image.convert('RGB')
        width, height = image.size
        # Same rounding as transformers' get_resize_output_image_size(default_to_square=False).
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
        size = (new_short, new_long) if width <= height else (new_long, new_short)
        if size != image.size:
            image = image.resize(size, resample=self.resample)
        arr = np.asarray(image)
        crop_h, crop_w = self.crop
        top, left = (arr.shape[0] - crop_h) // 2, (arr.shape[1] - crop_w) // 2
        return arr[top:top + crop_h, left:left + crop_w]

    def batch(self, images: Sequence[Image.Image], device: torch.device,
              dtype: torch.dtype) -> torch.Tensor:
        uint8 = torch.from_numpy(np.stack([self(img) for img in images]))
        x = uint8.to(device).permute(0, 3, 1, 2).float().contiguous()
        x = x * self.scale.to(device) - self.shift.to(device)
        return x.to(dtype)


class ClipEmbedder:
    """Embeds texts, images and image regions into CLIP's joint space (float32, unit norm)."""

    def __init__(self, checkpoint: Optional[str] = None, batch_size: int = 32,
                 device: str = 'auto', half: bool = False):
        self.checkpoint = resolve_checkpoint(checkpoint, ENV_CLIP_MODEL, DEFAULT_CLIP_MODEL)
        self.batch_size = _BATCH_SIZE.parse('batch_size', batch_size)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(self.device, half)
        model, info = from_pretrained(CLIPModel, self.checkpoint, dtype=self.dtype,
                                      output_loading_info=True)
        if info['missing_keys']:
            # transformers fills missing weights with random ones and only logs it.
            raise ModelLoadError(f'{self.checkpoint!r} is not a CLIP checkpoint: '
                                 f'{len(info["missing_keys"])} CLIP weights are missing')
        self.model = model.to(self.device).eval()
        # The PIL backend is the reference; the torchvision one resizes slightly differently.
        self.processor = from_pretrained(AutoProcessor, self.checkpoint, backend='pil')
        ip = self.processor.image_processor
        self._pixels = _Pixels(ip) if _Pixels.supports(ip) else None
        self.input_size = ip.size.shortest_edge or max(ip.size.height or 0, ip.size.width or 0)
        text_config = self.model.config.text_config
        self.max_text_tokens = min(self.processor.tokenizer.model_max_length,
                                   text_config.max_position_embeddings)
        self.dim = self.model.config.projection_dim

    def decode(self, data: bytes, boxes=None) -> DecodedImage:
        """Decode at reduced size where that leaves the smallest box (original pixels) at least
        the model's input size on its shorter side; no boxes: the whole image."""
        width, height = image_size(data)
        return decode(data, min_side=draft_min_side(self.input_size, width, height, boxes))

    def embed_texts(self, texts: Sequence[str], batch_size: Optional[int] = None) -> np.ndarray:
        """(N, D); texts longer than the model's context are truncated."""
        return self._batched(list(texts), batch_size, self._text_batch)

    def embed_images(self, images: Iterable[Image.Image],
                     batch_size: Optional[int] = None) -> np.ndarray:
        """(N, D). ``images`` may be a generator: only one batch is held at a time."""
        return self._batched(images, batch_size, self._image_batch)

    def embed_regions(self, decoded: DecodedImage, boxes,
                      batch_size: Optional[int] = None) -> np.ndarray:
        """(N, D): one row per box (original pixels) of ``decoded``."""
        return self.embed_images((decoded.crop(box) for box in as_boxes(boxes)), batch_size)

    def _batched(self, items: Iterable, batch_size: Optional[int], embed) -> np.ndarray:
        size = _BATCH_SIZE.parse('batch_size',
                                 self.batch_size if batch_size is None else batch_size)
        it = iter(items)
        out = [embed(batch) for batch in iter(lambda: list(islice(it, size)), [])]
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    @torch.inference_mode()
    def _text_batch(self, texts: List[str]) -> np.ndarray:
        tokens = self.processor.tokenizer(texts, padding=True, truncation=True,
                                          max_length=self.max_text_tokens, return_tensors='pt')
        pooled = self.model.text_model(input_ids=tokens['input_ids'].to(self.device),
                                       attention_mask=tokens['attention_mask'].to(self.device)
                                       ).pooler_output
        return self._normalised(self.model.text_projection(pooled))

    @torch.inference_mode()
    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The model's input for ``images``: (N, 3, H, W) on its device, in its dtype."""
        if self._pixels is not None:
            return self._pixels.batch(images, self.device, self.dtype)
        return self.processor.image_processor(images=list(images), return_tensors='pt')[
            'pixel_values'].to(self.device, self.dtype)

    @torch.inference_mode()
    def _image_batch(self, images: List[Image.Image]) -> np.ndarray:
        pixels = self.preprocess(images)
        pooled = self.model.vision_model(pixel_values=pixels).pooler_output
        return self._normalised(self.model.visual_projection(pooled))

    @staticmethod
    def _normalised(embeds: torch.Tensor) -> np.ndarray:
        embeds = embeds.float()
        return (embeds / embeds.norm(dim=-1, keepdim=True)).cpu().numpy()
