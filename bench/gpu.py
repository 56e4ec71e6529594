"""GPU indexing throughput: whole-image CLIP B/32 in fp16 through the index flow vs the bare model.

One command on a machine with a CUDA GPU (a few minutes; the first run also builds the
random-weight B/32 checkpoint):

    python bench/gpu.py                     # 4096 images, batch 256, 8 decode workers

Rows, on the same GPU and the same images (coco128 photos, each copy made unique by a trailing
byte so that the index flow does not skip it as a duplicate):

- ``bare``: ``Embedder.forward_images`` on batches already decoded, resized and on the GPU (the
  model alone: the ceiling);
- ``embedder``: ``Embedder.embed_images`` from JPEG bytes: decoding and resizing on ``workers``
  threads, overlapped with the model by the prefetch thread;
- ``flow``: ``Loupe.index`` of the bytes into the index flow started in this process
  (segmenter ``none``: whole images; encoder ``precision: fp16``, ``workers``), gRPC.

Without a CUDA device it measures nothing and says so (exit status 0).
"""
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

NAME = 'gpu'
COLUMNS = ['variant', 'images', 'batch_size', 'workers', 'images_per_s', 'vs_bare']
GOAL = 5000  # images/s on one H100-class GPU (issue 13); clip-retrieval reaches ~2,500 per A100


def unique_copies(blobs, n: int):
    """``n`` JPEGs cycling through ``blobs``, each with distinct bytes (decoders stop at the
    end-of-image marker, so the trailing bytes change the content hash, not the picture)."""
    return [blobs[i % len(blobs)] + b'\0' + str(i).encode() for i in range(n)]


@contextmanager
def _workspace(path: Path):
    """$LOUPE_WORKSPACE for the flow's executors (they read it when they start)."""
    from loupe.constants import ENV_WORKSPACE

    before = os.environ.get(ENV_WORKSPACE)
    os.environ[ENV_WORKSPACE] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_WORKSPACE, None)
        else:
            os.environ[ENV_WORKSPACE] = before


def measure(args, clip: str, count: int, batch_size: int, workers: int, device: str) -> list:
    import numpy as np

    from loupe.client import Loupe
    from loupe.embedder import Embedder

    blobs = unique_copies([f.read_bytes() for f in common.image_files(args)], count)
    precision = 'fp16' if device.startswith('cuda') else 'fp32'
    embedder = Embedder(clip, device=device, precision=precision, batch_size=batch_size,
                        workers=workers)
    images = list(embedder.map(lambda b: embedder.decode(b).image, blobs))
    batches = [embedder.preprocess(images[i:i + batch_size])
               for i in range(0, len(images), batch_size)]
    embedder.forward_images(batches[0])  # warm up (cuDNN / cuBLAS plans)
    _, bare_s = common.timed(lambda: [embedder.forward_images(b) for b in batches])
    del images, batches

    def from_bytes():
        return embedder.embed_images(embedder.map(lambda b: embedder.decode(b).image, blobs))
    vectors, embed_s = common.timed(from_bytes)
    assert vectors.shape[0] == count and np.isfinite(vectors).all()
    del embedder

    workspace = common.cache_dir(args, 'gpu-index')
    settings = {'segmenter': {'method': 'none'},
                'encoder': {'model': clip, 'precision': precision, 'device': device,
                            'batch_size': batch_size, 'workers': workers}}
    try:
        with _workspace(workspace), Loupe.local('index', executors=settings) as client:
            client.index(blobs[:batch_size], batch_size=batch_size, skip_existing=False)  # warm
            report, flow_s = common.timed(client.index, blobs, batch_size=batch_size,
                                          skip_existing=False)
        if report.errors or len(report.indexed) != count:
            raise RuntimeError(f'indexing failed: {report.errors[:3]}')
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    bare = count / bare_s
    return [{'variant': name, 'images': count, 'batch_size': batch_size, 'workers': workers,
             'images_per_s': count / s, 'vs_bare': count / s / bare}
            for name, s in (('bare', bare_s), ('embedder', embed_s), ('flow', flow_s))]


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--count', type=int, help='images (default 4096)')
    p.add_argument('--batch-size', type=int, help='images per model call and request (256)')
    p.add_argument('--workers', type=int, help='decode/resize threads (default 8)')
    p.add_argument('--device', default='cuda',
                   help='cuda (fp16); cpu (fp32) only to try the script without a GPU')
    args = p.parse_args(argv)
    import torch

    count = args.count or (16 if args.smoke else 4096)
    batch_size = args.batch_size or (8 if args.smoke else 256)
    workers = args.workers or (2 if args.smoke else 8)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        reason = 'no CUDA device here: nothing measured (run this on a GPU machine)'
        print(reason)
        return common.finish(NAME, args, {'skipped': reason}, [], COLUMNS)
    clip = common.clip_model(args)
    started = time.perf_counter()
    rows = measure(args, clip, count, batch_size, workers, args.device)
    gpu = torch.cuda.get_device_name(0) if args.device.startswith('cuda') else None
    return common.finish(NAME, args, {
        'clip_model': clip, 'device': args.device, 'gpu': gpu, 'goal_images_per_s': GOAL,
        'seconds': round(time.perf_counter() - started, 1)}, rows, COLUMNS,
        [f'goal: flow >= {GOAL} images/s on one H100-class GPU'])


if __name__ == '__main__':
    main()
