"""Decoding: every odd input a photo folder holds either decodes to RGB or fails with a reason."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import jpeg_bytes, synthetic_image
from loupe.errors import ImageLoadError
from loupe.images import decode, image_size, load, preview_jpeg, read_source


def png_bytes(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format='PNG')
    return out.getvalue()


def sixteen_bit(arr: np.ndarray) -> Image.Image:
    return Image.frombytes('I;16', arr.shape[::-1], arr.astype('<u2').tobytes())


def huge_png_header(width: int, height: int) -> bytes:
    """A valid PNG whose header claims ``width`` x ``height`` (what a decompression bomb does)."""
    data = bytearray(png_bytes(Image.new('L', (1, 1))))
    ihdr = 8 + 8  # signature, then length + b'IHDR'
    data[ihdr:ihdr + 8] = struct.pack('>II', width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = struct.pack('>I', crc)
    return bytes(data)


def with_orientation(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes(img, exif=exif.tobytes())


@pytest.mark.parametrize('make', [
    lambda: jpeg_bytes(synthetic_image()),
    lambda: png_bytes(synthetic_image().convert('P', palette=Image.Palette.ADAPTIVE)),
    lambda: png_bytes(synthetic_image().convert('RGBA')),
    lambda: png_bytes(synthetic_image().convert('LA')),
    lambda: jpeg_bytes(synthetic_image().convert('CMYK')),
    lambda: png_bytes(sixteen_bit(np.arange(240 * 320).reshape(240, 320) % 65535)),
    lambda: png_bytes(synthetic_image().convert('1')),
], ids=['jpeg', 'palette', 'rgba', 'grey-alpha', 'cmyk', '16-bit', '1-bit'])
def test_odd_modes_decode_to_rgb(make):
    decoded = decode(make())
    assert decoded.image.mode == 'RGB'
    assert (decoded.width, decoded.height) == (320, 240) == decoded.image.size


def test_sixteen_bit_is_stretched_not_clipped_to_white():
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    decoded = decode(png_bytes(sixteen_bit(ramp)))
    pixels = np.asarray(decoded.image)[..., 0]
    assert pixels.min() == 0 and pixels.max() == 255
    assert 100 < pixels.mean() < 155


def test_transparent_pixels_become_white():
    img = Image.new('RGBA', (8, 8), (0, 0, 0, 0))
    assert np.asarray(decode(png_bytes(img)).image).min() == 255


@pytest.mark.parametrize('data, reason', [
    (b'', 'empty file'),
    (b'this is not an image at all', 'not a readable image'),
    (b'%PDF-1.4 not an image', 'not a readable image'),
    (jpeg_bytes(synthetic_image(640, 480))[:2000], 'cannot decode'),
    (huge_png_header(20000, 20000), 'too large'),
], ids=['zero-byte', 'text', 'pdf', 'truncated-jpeg', 'bomb-20000x20000'])
def test_bad_input_is_reported_with_reason(data, reason):
    with pytest.raises(ImageLoadError, match=reason):
        decode(data)


def test_bomb_guard_is_a_setting():
    with pytest.raises(ImageLoadError, match='limit of 1000'):
        decode(png_bytes(synthetic_image(100, 100)), max_pixels=1000)


@pytest.mark.parametrize('orientation, size', [(1, (200, 100)), (3, (200, 100)),
                                               (6, (100, 200)), (8, (100, 200))])
def test_exif_orientation_applied(orientation, size):
    data = with_orientation(synthetic_image(200, 100), orientation)
    decoded = decode(data)
    assert (decoded.width, decoded.height) == size == decoded.image.size
    assert image_size(data) == size


def test_rotated_crop_is_in_oriented_pixels():
    img = Image.new('RGB', (200, 100), (0, 0, 0))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # red in the stored top-left corner
    decoded = decode(with_orientation(img, 6))  # displayed rotated 90 degrees clockwise
    # After rotating clockwise the stored top-left corner is shown at the top-right.
    assert np.asarray(decoded.crop([85, 0, 100, 15])).mean(axis=(0, 1))[0] > 200
    assert np.asarray(decoded.crop([0, 0, 15, 15])).mean(axis=(0, 1))[0] < 50


def test_draft_decoding_shrinks_big_jpeg_but_keeps_min_side_and_original_coordinates():
    data = jpeg_bytes(synthetic_image(2000, 1600))
    decoded = decode(data, min_side=224)
    assert 224 <= min(decoded.image.size) < 800
    assert (decoded.width, decoded.height) == (2000, 1600)
    box = decoded.to_original(decoded.to_decoded([100, 200, 1000, 1200]))[0]
    np.testing.assert_allclose(box, [100, 200, 1000, 1200], rtol=1e-5)
    assert decode(data).image.size == (2000, 1600)


def test_coco_photos_decode(coco_images):
    for path in coco_images[:10]:
        decoded = load(uri=str(path))
        assert decoded.image.mode == 'RGB' and decoded.width > 0


def test_missing_path_and_unreachable_url_are_reported(tmp_path):
    with pytest.raises(ImageLoadError, match='cannot read'):
        read_source(str(tmp_path / 'nope.jpg'))
    with pytest.raises(ImageLoadError, match='cannot read'):
        read_source('http://127.0.0.1:9/unreachable.jpg', timeout=2)


def test_preview_is_bounded_and_keeps_aspect():
    decoded = decode(jpeg_bytes(synthetic_image(3000, 1500)))
    preview = Image.open(io.BytesIO(preview_jpeg(decoded, 1024)))
    assert preview.size == (1024, 512)


@pytest.mark.parametrize('fmt, suffix', [('HEIF', '.heic'), ('AVIF', '.avif')])
def test_phone_formats_decode_and_are_crawled(fmt, suffix, tmp_path):
    from loupe.sources import expand

    out = io.BytesIO()
    synthetic_image(64, 48).save(out, format=fmt)
    decoded = decode(out.getvalue())
    assert (decoded.width, decoded.height) == (64, 48)
    r, g, b = decoded.image.getpixel((24, 18))  # inside the red square
    assert r > 150 and g < 80 and b < 80
    (tmp_path / f'phone{suffix}').write_bytes(out.getvalue())
    assert [p.name for p in expand([tmp_path], [])] == [f'phone{suffix}']
