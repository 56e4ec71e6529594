"""Decode + preprocess for CLIP, in images/s: with draft (reduced-size) JPEG decoding, and without.

What the encoder does to each image before the model: ``Embedder.decode`` (draft decoding
sized so that the smallest chunk box still covers the model's input) or a full-size decode,
a crop per chunk box (whole image, plus a 3x3 grid for ``grid``) and ``Embedder.preprocess``
(resize, center crop, normalise into the model's input tensor). One thread, as the encoder runs it.
"""
import functools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

NAME = 'decode'
# The table's columns: every row of the JSON has these keys (None where they do not apply).
COLUMNS = ['method', 'images', 'draft_images_per_s', 'full_images_per_s', 'draft_speedup']
METHODS = ('none', 'grid')


@functools.lru_cache(maxsize=None)
def _partitioner(method: str):
    from loupe.segment import Partitioner

    settings = common.executor_settings('index', 'segmenter')
    return Partitioner(**{**settings, 'method': method, 'device': 'cpu'})


def chunk_boxes(method: str, width: int, height: int):
    """The index flow's segmenter boxes for an image of this size (a grid needs only that)."""
    from PIL import Image

    from loupe.images import DecodedImage

    blank = DecodedImage(image=Image.new('RGB', (1, 1)), width=width, height=height)
    (proposals,) = _partitioner(method).partition([blank])
    return [p.box for p in proposals]


def decode_preprocess(embedder, blobs, boxes, draft: bool) -> float:
    """Seconds to take ``blobs`` through decode -> crops -> model input."""
    from loupe.images import decode

    start = time.perf_counter()
    for blob, image_boxes in zip(blobs, boxes):
        decoded = embedder.decode(blob, image_boxes) if draft else decode(blob)
        embedder.preprocess([decoded.crop(box) for box in image_boxes])
    return time.perf_counter() - start


def measure(args, clip: str, n_images: int, repeat: int) -> list:
    """Images/s per method, with and without draft decoding (passes alternate, so a change of
    machine load hits both alike)."""
    import torch

    from loupe.embedder import Embedder

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the encoder, this part runs on one thread
    try:
        return _measure(args, Embedder(clip), n_images, repeat)
    finally:
        torch.set_num_threads(threads)


def _measure(args, embedder, n_images: int, repeat: int) -> list:
    from loupe.images import image_size

    blobs = [f.read_bytes() for f in common.image_files(args, n_images)]
    rows = []
    for method in METHODS:
        boxes = [chunk_boxes(method, *image_size(b)) for b in blobs]
        decode_preprocess(embedder, blobs[:4], boxes[:4], True)  # warm up
        seconds = {True: 0.0, False: 0.0}
        for _ in range(repeat):
            for draft in (True, False):
                seconds[draft] += decode_preprocess(embedder, blobs, boxes, draft)
        with_draft, without = (repeat * len(blobs) / seconds[d] for d in (True, False))
        rows.append({'method': method, 'images': len(blobs),
                     'draft_images_per_s': with_draft, 'full_images_per_s': without,
                     'draft_speedup': with_draft / without})
    return rows


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--count', type=int, help='images (default all of coco128)')
    p.add_argument('--repeat', type=int, help='passes over the images (default 3)')
    args = p.parse_args(argv)
    count = args.count or (4 if args.smoke else None)
    repeat = args.repeat or (1 if args.smoke else 3)
    rows = measure(args, common.clip_model(args), count, repeat)
    notes = ['draft: JPEG decoded at 1/2, 1/4 or 1/8 scale where the smallest chunk still '
             'covers the model input (224 px); the cells of the flows\' 3x3 grid (25% overlap) '
             'of a ~640x480 photo are ~256x192, which needs the full size: no gain there']
    return common.finish(NAME, args, {'clip_model': common.clip_model(args)}, rows, COLUMNS,
                         notes)


if __name__ == '__main__':
    main()
