"""/recommend per request: p50/p95 with the ANN candidate set versus scoring every image, and the
candidate set's recall (the top 10 it gives that scoring everything also gives), at 10k, 100k
and 1M images.

Synthetic whole-image vectors (clusters of 100 images around directions in a shared cone, as
bench/data.py makes CLIP-like vectors) are written through loupe.ann.ChunkIndex, one whole
chunk per image (cached under bench-cache/recommend/). Each request likes 3 images of one
cluster and dislikes 2 of another, and is answered by ``loupe.explore.service.recommend`` on
``ChunkIndexVectors``, what the indexer executor calls (its in-memory vectors warm).
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench import common  # noqa: E402

NAME = 'recommend'
COLUMNS = ['images', 'mode', 'p50_ms', 'p95_ms', 'candidate_recall_at_10', 'requests',
           'build_s']
DIM = 512
CLUSTER = 100


def vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clusters = max(1, n // CLUSTER)
    shared = rng.normal(size=dim)
    centres = shared / np.linalg.norm(shared) + rng.normal(size=(clusters, dim)) / np.sqrt(dim)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        rows = np.arange(start, min(n, start + 100_000))
        block = centres[rows % clusters] + 0.7 * rng.normal(size=(len(rows), dim)) / np.sqrt(dim)
        out[rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def build(path: Path, n: int) -> float:
    """A chunk index of ``n`` whole-image chunks at ``path`` (built once); build seconds."""
    from loupe.ann import ChunkIndex
    from bench.data import Chunk

    marker = path / 'built.txt'
    if marker.exists():
        return float(marker.read_text())
    data = vectors(n)
    start = time.perf_counter()
    with ChunkIndex(path, save_every=None) as index:
        for first in range(0, n, 2000):
            index.upsert_many((f'img{i:08d}', [Chunk([0, 0, 640, 480], 'whole', None, data[i])],
                               {}) for i in range(first, min(n, first + 2000)))
    seconds = time.perf_counter() - start
    marker.write_text(str(seconds))
    return seconds


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--sizes', type=lambda s: [int(float(x)) for x in s.split(',')],
                   help='images (default 10000,100000,1000000)')
    p.add_argument('--requests', type=int, help='requests per size and mode (default 50)')
    args = p.parse_args(argv)
    from loupe.ann import ChunkIndex
    from loupe.explore import params, service
    from loupe.explore.vectors import ChunkIndexVectors

    sizes = args.sizes or ([2000] if args.smoke else [10_000, 100_000, 1_000_000])
    n_requests = args.requests or (5 if args.smoke else 50)
    defaults = params.defaults('/recommend')
    rows = []
    for n in sizes:
        path = common.cache_dir(args, NAME, f'{n}')
        build_s = build(path, n)
        with ChunkIndex(path) as index:
            view = ChunkIndexVectors(index)
            view.whole_vectors()  # warm: the executor keeps them between writes
            clusters = max(1, n // CLUSTER)
            rng = np.random.default_rng(1)
            votes = []
            for _ in range(n_requests):
                a, b = rng.choice(clusters, size=2, replace=False)
                members = lambda c: [f'img{i:08d}' for i in range(c, n, clusters)]  # noqa: E731
                votes.append((list(rng.choice(members(a), 3, replace=False)),
                              list(rng.choice(members(b), 2, replace=False))))
            answers = {}
            for mode, exhaustive_max in (('ann candidates', 0), ('score everything', n)):
                times, answers[mode] = [], []
                for like, dislike in votes:
                    start = time.perf_counter()
                    ranking = service.recommend(view, like, dislike, 10, defaults['ask'],
                                                defaults['candidates'], exhaustive_max, None)
                    times.append(time.perf_counter() - start)
                    answers[mode].append(set(ranking.ids))
                rows.append({'images': n, 'mode': mode, 'requests': n_requests,
                             'p50_ms': common.percentile(times, 50) * 1e3,
                             'p95_ms': common.percentile(times, 95) * 1e3, 'build_s': build_s})
            recall = np.mean([len(c & e) / max(1, len(e)) for c, e in
                              zip(answers['ann candidates'], answers['score everything'])])
            rows[-2]['candidate_recall_at_10'] = float(recall)
    return common.finish(NAME, args, {'candidates': defaults['candidates'], 'dim': DIM}, rows,
                         COLUMNS, notes=[f'candidate set: about {defaults["candidates"]} '
                                         'images nearest the likes and their mean'])


if __name__ == '__main__':
    main()
