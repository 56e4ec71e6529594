"""/duplicates at scale: time and memory of the perceptual pairs (multi-index hashing of 64-bit
pHashes) and of the semantic pairs (kNN of every whole-image vector through the ANN), on
synthetic data with planted near-duplicates, and the recall of the planted pairs.

Perceptual: uniform random hashes, 1% of them copied with 1..10 bits flipped; found by
``loupe.explore.hamming.pairs_within`` at the default threshold. Semantic: whole-image vectors
(bench/recommend.py's clusters), 1% of them copied with a little noise (cosine ~0.98), written
through ChunkIndex and grouped by ``loupe.explore.service.semantic_edges``. Memory is the peak
resident set size added while a step runs (``ru_maxrss`` of a fresh child process per step).
"""
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench import common  # noqa: E402

NAME = 'duplicates'
COLUMNS = ['method', 'images', 'seconds', 'peak_rss_mib', 'pairs_found', 'planted_recall',
           'build_s']
PLANTED = 0.01


def perceptual(n: int) -> dict:
    from loupe.explore.hamming import pairs_within
    from loupe.explore.params import defaults

    threshold = defaults('/duplicates')['perceptual_threshold']
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2 ** 63, size=n, dtype=np.uint64) * np.uint64(2) + \
        rng.integers(0, 2, size=n, dtype=np.uint64)
    copies = rng.choice(n // 2, size=int(n * PLANTED), replace=False) * 2
    for i in copies.tolist():
        bits = rng.choice(64, size=int(rng.integers(1, threshold + 1)), replace=False)
        hashes[i + 1] = hashes[i] ^ np.uint64(sum(1 << int(b) for b in bits))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    left, right, _ = pairs_within(hashes, threshold)
    seconds = time.perf_counter() - start
    found = set(zip(left.tolist(), right.tolist()))
    recall = np.mean([(i, i + 1) in found for i in copies.tolist()])
    return {'seconds': seconds, 'peak_rss_mib': (resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss - before) / 1024, 'pairs_found': len(found),
        'planted_recall': float(recall)}


def semantic(n: int, path: str) -> dict:
    from bench.recommend import vectors
    from bench.data import Chunk
    from loupe.ann import ChunkIndex
    from loupe.explore import service
    from loupe.explore.params import defaults
    from loupe.explore.vectors import ChunkIndexVectors

    rng = np.random.default_rng(0)
    data = vectors(n, seed=2)
    copies = rng.choice(n // 2, size=int(n * PLANTED), replace=False) * 2
    noisy = data[copies] + rng.normal(size=(len(copies), data.shape[1])).astype(np.float32) * 0.006
    data[copies + 1] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    build_s = None
    marker = Path(path) / 'built.txt'
    if not marker.exists():
        start = time.perf_counter()
        with ChunkIndex(path, save_every=None) as index:
            for first in range(0, n, 2000):
                index.upsert_many((f'img{i:08d}', [Chunk([0, 0, 1, 1], 'whole', None, data[i])],
                                   {}) for i in range(first, min(n, first + 2000)))
        marker.write_text(str(time.perf_counter() - start))
    build_s = float(marker.read_text())
    del data
    with ChunkIndex(path) as index:
        view = ChunkIndexVectors(index)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        options = defaults('/duplicates')
        edges = service.semantic_edges(view, options['semantic_threshold'],
                                       options['neighbours'], None)
        seconds = time.perf_counter() - start
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    found = {(a, b) for a, b, _ in edges}
    recall = np.mean([(f'img{i:08d}', f'img{i + 1:08d}') in found for i in copies.tolist()])
    return {'seconds': seconds, 'peak_rss_mib': peak, 'pairs_found': len(found),
            'planted_recall': float(recall), 'build_s': build_s}


EDITS = {
    'half size': lambda im: im.resize((im.width // 2, im.height // 2)),
    'quarter size': lambda im: im.resize((im.width // 4, im.height // 4)),
    'JPEG quality 30': lambda im: im,
    'JPEG quality 10': lambda im: im,
    'brighter +15%': lambda im: _enhance(im, 1.15),
    'darker -15%': lambda im: _enhance(im, 0.85),
    'crop 2% each side': lambda im: _crop(im, 0.02),
    'crop 5% each side': lambda im: _crop(im, 0.05),
}
QUALITY = {'JPEG quality 30': 30, 'JPEG quality 10': 10}


def _enhance(im, factor):
    from PIL import ImageEnhance

    return ImageEnhance.Brightness(im).enhance(factor)


def _crop(im, share):
    dx, dy = round(im.width * share), round(im.height * share)
    return im.crop((dx, dy, im.width - dx, im.height - dy))


def phash_table(files) -> list:
    """pHash distances (as the root store computes them, through ``build_record``) between
    each photo and its edited copies, and between different photos: the default threshold's
    evidence."""
    import io
    from itertools import combinations

    from PIL import Image

    from loupe.store import build_record

    def phash(data: bytes) -> int:
        return int(build_record('x', data).phash, 16)

    def jpeg(image, quality=90) -> bytes:
        out = io.BytesIO()
        image.save(out, format='JPEG', quality=quality)
        return out.getvalue()

    originals, distances = [], {name: [] for name in EDITS}
    for path in files:
        data = Path(path).read_bytes()
        original = phash(data)
        originals.append(original)
        image = Image.open(io.BytesIO(data)).convert('RGB')
        for name, edit in EDITS.items():
            edited = phash(jpeg(edit(image), QUALITY.get(name, 90)))
            distances[name].append(bin(original ^ edited).count('1'))
    distances['different photos'] = [bin(a ^ b).count('1') for a, b in combinations(originals, 2)]
    from loupe.explore.params import defaults

    threshold = defaults('/duplicates')['perceptual_threshold']
    return [{'comparison': name, 'pairs': len(d), 'min_bits': int(np.min(d)),
             'median_bits': float(np.median(d)), 'p95_bits': float(np.percentile(d, 95)),
             'max_bits': int(np.max(d)),
             f'within_{threshold}_bits': float(np.mean(np.asarray(d) <= threshold))}
            for name, d in distances.items()]


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--sizes', type=lambda s: [int(float(x)) for x in s.split(',')],
                   help='images (default 10000,100000,1000000)')
    p.add_argument('--methods', default='perceptual,semantic', help='default both')
    p.add_argument('--step', help='(internal) run one step in this process, print JSON')
    p.add_argument('--phash-table', action='store_true',
                   help='instead: pHash distances of edited copies of the photos (--images, '
                        'default coco128) and between different photos')
    args = p.parse_args(argv)
    if args.phash_table:
        rows = phash_table(common.image_files(args, 8 if args.smoke else None))
        return common.finish(NAME + '-phash', args, {}, rows, list(rows[0]))
    if args.step:
        job = json.loads(args.step)
        result = perceptual(job['n']) if job['method'] == 'perceptual' else \
            semantic(job['n'], job['path'])
        print(json.dumps(result))
        return {}
    sizes = args.sizes or ([3000] if args.smoke else [10_000, 100_000, 1_000_000])
    rows = []
    for n in sizes:
        for method in args.methods.split(','):
            job = {'method': method, 'n': n,
                   'path': str(common.cache_dir(args, NAME, f'semantic-{n}'))}
            run = subprocess.run([sys.executable, __file__, '--step', json.dumps(job)],
                                 capture_output=True, text=True, check=True)
            rows.append({'method': method, 'images': n, **json.loads(run.stdout.splitlines()[-1])})
    return common.finish(NAME, args, {'planted_share': PLANTED}, rows, COLUMNS)


if __name__ == '__main__':
    main()
