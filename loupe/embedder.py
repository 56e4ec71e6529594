"""Embeddings of texts, images and image regions from any dual-encoder image-text model.

The checkpoint loads through ``AutoModel`` / ``AutoProcessor`` and embeds through the model's own
``get_text_features`` / ``get_image_features`` (CLIP, SigLIP, SigLIP 2 incl. NaFlex,
Chinese-CLIP, AltCLIP, ...; see loupe.families), L2-normalised float32: equal to the reference
pipeline (processor, PIL backend, + model forward's ``text_embeds`` / ``image_embeds``).

Images of the resize -> (center crop) -> normalise processors are preprocessed here rather than
by the processor: the same PIL resize and crop, but without its per-image numpy/PIL round trips
and float64 rescaling, and the normalisation runs once per batch. Other processors (NaFlex's
patching) run as they are. Decoding and preprocessing of the next batch run on another thread
while the model works on the current one.
"""
import math
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Iterable, Iterator, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from transformers import (AutoModel, AutoProcessor, ChineseCLIPImageProcessorPil,
                          CLIPImageProcessorPil, SiglipImageProcessorPil)

from loupe import families, precision as precisions
from loupe.boxes import as_boxes
from loupe.constants import BACKENDS, DEFAULT_CLIP_MODEL, ENV_CLIP_MODEL
from loupe.errors import InvalidRequestError, ModelLoadError
from loupe.images import DecodedImage, decode, image_size
from loupe.models import from_pretrained, resolve_checkpoint, resolve_device
from loupe.prefetch import ordered_map, prefetch


def check_batch_size(value) -> int:
    """A positive int; integral floats are accepted because gRPC request parameters carry floats."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidRequestError(f'batch_size must be a positive integer, got {value!r}')
    return value


def draft_min_side(input_size: int, width: int, height: int, boxes=None) -> int:
    """Shorter side to decode an image at so that its smallest box still spans ``input_size``."""
    smallest = min(width, height)
    b = as_boxes(boxes if boxes is not None else [])
    if len(b):
        sides = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        smallest = min(smallest, max(float(sides.min()), 1.0))
    return math.ceil(input_size * min(width, height) / smallest)


# Processors whose whole pipeline is convert RGB -> resize -> center crop -> rescale ->
# normalise; _Pixels reproduces them (tested equal per family). Exact types: a subclass may add
# steps.
_FAST_PROCESSORS = (CLIPImageProcessorPil, ChineseCLIPImageProcessorPil, SiglipImageProcessorPil)


class _Pixels:
    """The PIL processor's resize (shortest edge, or to a fixed size) -> center crop, to uint8
    HWC arrays; normalisation per batch."""

    def __init__(self, image_processor):
        ip = image_processor
        self.shortest_edge = ip.size.shortest_edge
        self.fixed = None if self.shortest_edge else (ip.size.width, ip.size.height)
        self.crop = ((ip.crop_size.height, ip.crop_size.width)
                     if getattr(ip, 'do_center_crop', False) else None)
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
        if type(ip) not in _FAST_PROCESSORS or not ip.do_resize or getattr(ip, 'do_pad', False):
            return False
        size = ip.size
        if size.shortest_edge and not size.longest_edge:
            resized = (size.shortest_edge, size.shortest_edge)  # the crop must fit either way
        elif size.height and size.width and not size.shortest_edge:
            resized = (size.height, size.width)
        else:
            return False
        if getattr(ip, 'do_center_crop', False):
            crop = ip.crop_size
            return bool(crop.height) and crop.height <= resized[0] and crop.width <= resized[1]
        return True

    def __call__(self, image: Image.Image) -> np.ndarray:
        if image.mode != 'RGB':
            image = image.convert('RGB')
        width, height = image.size
        if self.fixed:
            size = self.fixed
        else:
            # Same rounding as transformers' get_resize_output_image_size(default_to_square=False).
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
            size = (new_short, new_long) if width <= height else (new_long, new_short)
        if size != image.size:
            image = image.resize(size, resample=self.resample)
        arr = np.asarray(image)
        if self.crop is None:
            return arr
        crop_h, crop_w = self.crop
        top, left = (arr.shape[0] - crop_h) // 2, (arr.shape[1] - crop_w) // 2
        return arr[top:top + crop_h, left:left + crop_w]

    def normalise(self, uint8: np.ndarray, device: torch.device,
                  dtype: torch.dtype) -> torch.Tensor:
        x = torch.from_numpy(uint8).to(device).permute(0, 3, 1, 2).float().contiguous()
        x = x * self.scale.to(device) - self.shift.to(device)
        return x.to(dtype)


class Embedder:
    """Embeds texts, images and image regions into a dual encoder's joint space (float32, unit
    norm), at the configured precision (loupe.precision)."""

    def __init__(self, checkpoint: Optional[str] = None, batch_size: int = 32,
                 device: str = 'auto', precision: str = 'fp32', workers: int = 1,
                 backend: str = 'torch'):
        """``workers``: threads that decode and resize (beyond the one prefetch thread); more
        than one pays where the model is faster than one CPU thread's decoding (a GPU).
        ``backend``: ``torch``, or ``onnx`` (CPU, fp32 or int8): the image tower on ONNX
        Runtime (loupe.onnx_backend), texts on torch in fp32."""
        if backend not in BACKENDS:
            raise ValueError(f'unknown backend {backend!r}; valid: {", ".join(BACKENDS)}')
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f'workers must be a positive integer, got {workers!r}')
        self.workers = workers
        self._pool = (ThreadPoolExecutor(workers, thread_name_prefix='loupe-decode')
                      if workers > 1 else None)
        self.checkpoint = resolve_checkpoint(checkpoint, ENV_CLIP_MODEL, DEFAULT_CLIP_MODEL)
        self.batch_size = check_batch_size(batch_size)
        self.device = resolve_device(device)
        self.precision = precisions.effective(precision, self.device)
        self.dtype = precisions.load_dtype(self.precision, self.device)
        model, info = from_pretrained(AutoModel, self.checkpoint, dtype=self.dtype,
                                      output_loading_info=True)
        self.family = families.family_of(model, self.checkpoint)
        if info['missing_keys']:
            # transformers fills missing weights with random ones and only logs it.
            raise ModelLoadError(f'{self.checkpoint!r} is not a complete {self.family.name} '
                                 f'checkpoint: {len(info["missing_keys"])} weights are missing')
        # The PIL backend is the reference; the torchvision one resizes slightly differently.
        self.processor = from_pretrained(AutoProcessor, self.checkpoint, backend='pil')
        ip = self.processor.image_processor
        # A processor's own image defaults (SigLIP 2's max_num_patches) win over its image
        # processor's settings in the reference pipeline: such processors run as they are.
        defaults = getattr(self.processor, 'images_kwargs', None) or {}
        self._pixels = _Pixels(ip) if _Pixels.supports(ip) and not defaults else None
        self.input_size = families.input_size(ip, defaults)
        model = model.to(self.device).eval()
        self.backend, self._onnx = backend, None
        if backend == 'onnx':
            self._onnx = self._onnx_tower(model)
            self.model, self._context = precisions.apply(model, 'fp32', self.device)  # texts
        else:
            self.model, self._context = precisions.apply(model, self.precision, self.device)
        self.max_text_tokens = families.max_text_tokens(self.family, model,
                                                        self.processor.tokenizer)
        self.dim = int(self._text_batch(['a']).shape[1])

    def _onnx_tower(self, model):
        from loupe.onnx_backend import OnnxImageTower

        if self.device.type != 'cpu' or self.precision not in ('fp32', 'int8'):
            raise ValueError('backend onnx runs on a CPU in fp32 or int8, not '
                             f'{self.precision} on {self.device.type}')
        if self._pixels is None:
            raise ValueError(f'backend onnx needs a fixed input size; {self.checkpoint!r} '
                             f'({self.family.name}) has a variable one: use backend torch')
        height, width = self._prepare([Image.new('RGB', (self.input_size,) * 2)]).shape[1:3]
        return OnnxImageTower(model, self.checkpoint, (height, width),
                              int8=self.precision == 'int8')

    def map(self, fn, items: Iterable) -> Iterator:
        """``map(fn, items)`` in order, on the decode workers when there are several."""
        return ordered_map(fn, items, self._pool, window=2 * self.workers)

    def decode(self, data: bytes, boxes=None) -> DecodedImage:
        """Decode at reduced size where that leaves the smallest box (original pixels) at least
        the model's input size on its shorter side; no boxes: the whole image."""
        width, height = image_size(data)
        return decode(data, min_side=draft_min_side(self.input_size, width, height, boxes))

    def embed_texts(self, texts: Sequence[str], batch_size: Optional[int] = None) -> np.ndarray:
        """(N, D); texts longer than the model's context are truncated."""
        size = check_batch_size(self.batch_size if batch_size is None else batch_size)
        texts = list(texts)
        return self._concat([self._text_batch(texts[i:i + size])
                             for i in range(0, len(texts), size)])

    def embed_images(self, images: Iterable[Image.Image],
                     batch_size: Optional[int] = None) -> np.ndarray:
        """(N, D). ``images`` may be a generator: it is consumed (decoding included) on a
        background thread, at most two batches ahead of the model."""
        size = check_batch_size(self.batch_size if batch_size is None else batch_size)
        return self._concat([self._image_batch(prepared) for prepared in
                             prefetch(self._prepared(images, size))])

    def embed_regions(self, decoded: DecodedImage, boxes,
                      batch_size: Optional[int] = None) -> np.ndarray:
        """(N, D): one row per box (original pixels) of ``decoded``."""
        return self.embed_images((decoded.crop(box) for box in as_boxes(boxes)), batch_size)

    @torch.inference_mode()
    def preprocess(self, images: Sequence[Image.Image]) -> dict:
        """The model's image inputs for ``images`` on its device, as ``get_image_features``
        takes them."""
        return self._to_device(self._prepare(images))

    def _prepared(self, images: Iterable[Image.Image], size: int) -> Iterator:
        it = iter(images)
        for batch in iter(lambda: list(islice(it, size)), []):
            yield self._prepare(batch)

    def _prepare(self, images: Sequence[Image.Image]):
        """CPU-side preprocessing (thread-safe, no torch thread teams)."""
        if self._pixels is not None:
            return np.stack(list(self.map(self._pixels, images)))  # (N, H, W, 3) uint8
        return dict(self.processor(images=list(images), return_tensors='pt'))

    def _to_device(self, prepared) -> dict:
        if isinstance(prepared, np.ndarray):
            return {'pixel_values': self._pixels.normalise(prepared, self.device, self.dtype)}
        return {k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
                for k, v in prepared.items()}

    def _concat(self, out: List[np.ndarray]) -> np.ndarray:
        if out:
            return np.concatenate(out)
        return np.zeros((0, getattr(self, 'dim', 0)), dtype=np.float32)

    @torch.inference_mode()
    def _text_batch(self, texts: List[str]) -> np.ndarray:
        tokens = self.processor(
            text=texts, padding='max_length' if self.family.pad_to_max_length else True,
            truncation=True, max_length=self.max_text_tokens, return_tensors='pt')
        with self._context():
            out = self.model.get_text_features(**tokens.to(self.device))
        return self._normalised(out)

    @torch.inference_mode()
    def forward_images(self, inputs: dict) -> np.ndarray:
        """The model step alone, on ``preprocess``'s output (the benchmarks' bare model)."""
        if self._onnx is not None:
            return self._normalised(self._onnx.forward(inputs['pixel_values']))
        with self._context():
            return self._normalised(self.model.get_image_features(**inputs))

    def _image_batch(self, prepared) -> np.ndarray:
        return self.forward_images(self._to_device(prepared))

    @staticmethod
    def _normalised(out) -> np.ndarray:
        embeds = out if isinstance(out, torch.Tensor) else out.pooler_output
        embeds = embeds.float()
        return (embeds / embeds.norm(dim=-1, keepdim=True)).cpu().numpy()
