"""A small synthetic photo set, so the end-to-end tests run where ../shared/data/coco128 is absent.

Each picture is a gradient background with a few filled shapes and sensor-like noise, in the
sizes, orientations and formats photos come in (landscape and portrait JPEGs, a PNG with an
alpha channel, a JPEG whose EXIF orientation turns it). Every picture is different, so an image
query finds its own source.
"""
import io
from pathlib import Path
from typing import List

import numpy as np
from PIL import Image, ImageDraw

SIZES = [(640, 480), (480, 640), (800, 533), (512, 512), (600, 400), (400, 600),
         (720, 480), (333, 500), (640, 427), (500, 375), (427, 640), (560, 560)]


def synthetic_photo(seed: int, size=(640, 480)) -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = size
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    background = (top * (1 - t) + bottom * t) * np.ones((1, width, 1))
    image = Image.fromarray(background.astype(np.uint8), 'RGB')
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        x1, y1 = rng.integers(0, width * 3 // 4), rng.integers(0, height * 3 // 4)
        x2 = x1 + rng.integers(width // 10, width // 3)
        y2 = y1 + rng.integers(height // 10, height // 3)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.integers(0, 3)
        if shape == 0:
            draw.ellipse([x1, y1, x2, y2], fill=colour)
        elif shape == 1:
            draw.rectangle([x1, y1, x2, y2], fill=colour)
        else:
            draw.polygon([(x1, y2), ((x1 + x2) // 2, y1), (x2, y2)], fill=colour)
    noisy = np.asarray(image, dtype=np.int16) + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), 'RGB')


def write_photo_set(folder: Path, count: int = len(SIZES)) -> List[Path]:
    """``count`` distinct photos in ``folder`` (JPEGs, a PNG with alpha, an EXIF-rotated JPEG)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        photo = synthetic_photo(seed=100 + i, size=SIZES[i % len(SIZES)])
        if i == 1:
            path = folder / f'photo{i:02d}.png'
            photo.putalpha(255)
            photo.save(path)
        elif i == 2:
            path = folder / f'photo{i:02d}.jpg'
            exif = Image.Exif()
            exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
            photo.save(path, quality=90, exif=exif)
        else:
            path = folder / f'photo{i:02d}.jpg'
            buffer = io.BytesIO()
            photo.save(buffer, 'JPEG', quality=90)
            path.write_bytes(buffer.getvalue())
        paths.append(path)
    return sorted(paths)
