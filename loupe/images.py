"""Reading and decoding images robustly: EXIF orientation, odd modes, bombs, reduced decoding.

Everything returns or takes boxes in *original* pixels (EXIF orientation applied); a
``DecodedImage`` remembers how its pixels relate to those when it was decoded at reduced size.
"""
import hashlib
import io
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from loupe.boxes import scale
from loupe.errors import ImageLoadError

try:  # HEIC/HEIF (phone photos) through the maintained pillow-heif plugin; AVIF is in Pillow
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - a dependency; without it HEIC files are reported
    pass
else:
    register_heif_opener()

# PIL raises its own bomb error only at twice its limit; ours is one clear threshold.
DEFAULT_MAX_PIXELS = 178_956_970
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
_ROTATING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_ORIENTATION_TAG = 0x0112


@dataclass
class DecodedImage:
    """An RGB image, EXIF-oriented, possibly decoded at reduced size."""

    image: Image.Image
    width: int  # original width, EXIF orientation applied
    height: int

    @property
    def scale_x(self) -> float:
        return self.width / self.image.width

    @property
    def scale_y(self) -> float:
        return self.height / self.image.height

    def to_original(self, boxes) -> np.ndarray:
        return scale(boxes, self.scale_x, self.scale_y)

    def to_decoded(self, boxes) -> np.ndarray:
        return scale(boxes, 1 / self.scale_x, 1 / self.scale_y)

    def crop(self, box) -> Image.Image:
        """The region ``box`` (original pixels) of the image, at least one pixel wide."""
        x1, y1, x2, y2 = self.to_decoded(box)[0]
        x1, y1 = int(np.floor(x1)), int(np.floor(y1))
        x2 = max(int(np.ceil(x2)), x1 + 1)
        y2 = max(int(np.ceil(y2)), y1 + 1)
        return self.image.crop((x1, y1, x2, y2))


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_source(uri: str, timeout: float = 15.0) -> bytes:
    """Bytes of a local path, ``file://`` URI or http(s) URL."""
    try:
        if uri.startswith(('http://', 'https://')):
            request = urllib.request.Request(uri, headers={'User-Agent': 'loupe'})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                data = response.read(MAX_DOWNLOAD_BYTES + 1)
            if len(data) > MAX_DOWNLOAD_BYTES:
                raise ImageLoadError(f'larger than {MAX_DOWNLOAD_BYTES} bytes')
            return data
        path = Path(uri[len('file://'):] if uri.startswith('file://') else uri)
        return path.expanduser().read_bytes()
    except urllib.error.HTTPError as e:
        raise ImageLoadError(f'cannot read: HTTP {e.code} {e.reason}') from e
    except urllib.error.URLError as e:
        raise ImageLoadError(f'cannot read: {e.reason}') from e
    except OSError as e:  # the caller names the file: say only why
        raise ImageLoadError(f'cannot read: {e.strerror or e}') from e
    except ValueError as e:
        raise ImageLoadError(f'cannot read: {e}') from e


def source_bytes(blob: Optional[bytes], uri: Optional[str]) -> bytes:
    """The image bytes a document carries: its ``blob``. Executors never read ``uri``, a label:
    the gateway (loupe.intake) has put into ``blob`` the bytes of any source it may read."""
    if blob is not None:
        return blob  # a zero-byte blob is reported as an empty file by decode
    if uri:
        raise ImageLoadError(f'{uri}: no image bytes (the service does not read this uri; '
                             'send the bytes as blob)')
    raise ImageLoadError('no image: the document has neither blob nor uri')


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageLoadError('empty file (0 bytes)')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f'image too large: {e}') from e
    except UnidentifiedImageError as e:  # its message is the repr of our BytesIO
        raise ImageLoadError('not a readable image (unknown or corrupt format)') from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(f'not a readable image: {e}') from e
    if img.width * img.height > max_pixels:
        raise ImageLoadError(f'image too large: {img.width}x{img.height} pixels is over the '
                             f'limit of {max_pixels} (decompression-bomb guard)')
    return img


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    orientation = img.getexif().get(_ORIENTATION_TAG, 1)
    if orientation in _ROTATING_ORIENTATIONS:
        return img.height, img.width
    return img.width, img.height


def image_size(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) with EXIF orientation applied, from the header alone."""
    return _oriented_size(_open(data, max_pixels))


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == 'RGB':
        return img
    if img.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F'):
        # 16-bit and float greyscale: stretch to 8 bits instead of clipping to white.
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8)).convert('RGB')
    if img.mode in ('RGBA', 'LA', 'PA', 'La', 'RGBa') or (
            img.mode == 'P' and 'transparency' in img.info):
        rgba = img.convert('RGBA')
        background = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert('RGB')
    return img.convert('RGB')


def decode(data: bytes, min_side: Optional[int] = None,
           max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode to an EXIF-oriented RGB image.

    ``min_side``: the caller needs no more than this many pixels on the shorter side, so a JPEG
    may be decoded at 1/2, 1/4 or 1/8 scale by the decoder itself (much faster for big photos).
    """
    img = _open(data, max_pixels)
    width, height = _oriented_size(img)
    try:
        if min_side and img.format == 'JPEG':
            factor = min_side / min(img.width, img.height)
            if factor < 1:
                img.draft('RGB', (int(np.ceil(img.width * factor)),
                                  int(np.ceil(img.height * factor))))
        img.load()
        img = ImageOps.exif_transpose(img)
        img = _to_rgb(img)
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(f'cannot decode image: {e}') from e
    return DecodedImage(image=img, width=width, height=height)


def load(blob: Optional[bytes] = None, uri: Optional[str] = None,
         min_side: Optional[int] = None) -> DecodedImage:
    """Decode ``blob``, else read ``uri`` here (for the client side, never the service)."""
    return decode(blob if blob is not None else read_source(uri), min_side=min_side)


def preview_jpeg(decoded: DecodedImage, max_side: int, quality: int = 90) -> bytes:
    """A JPEG no larger than ``max_side``: enough to rerank and show a result anywhere."""
    img = decoded.image
    if max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    img.save(out, format='JPEG', quality=quality)
    return out.getvalue()

