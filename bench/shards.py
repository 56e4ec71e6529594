"""Sharding the chunk index: build throughput, query p50/p95 and resident memory per shard, with
1, 2 and 4 shards of the same synthetic chunk vectors (bench/data.py, 1M by default).

Per shard count N:

- build: each image's 10 chunk vectors are written straight into its owner's ``ChunkIndex``
  (``loupe.shard.shard_of``), the N shards in N processes at once, as N indexer shards would
  write them; throughput is chunk vectors per second of wall time;
- serve: a flow of the chunk indexer alone, ``shards: N`` with the project's sharding settings
  (``loupe.scaling``: polling ALL, the shard merger), loads the shards; query p50/p95 is a
  search by a query vector (limit 10, the indexer's default 100 chunk hits) sent over gRPC,
  one at a time, the head fanning it out and the merger merging the shards' hits;
- memory: the resident set of each shard process (found by the LMDB file it maps), after the
  queries, and the size of each shard's graph file (what the index itself holds in memory,
  without the process's baseline of Python, Jina and torch);
- flow indexing: images of 10 synthetic chunk vectors sent to ``/index`` through the same flow
  (every shard receives every image and keeps its own), images per second; removed afterwards.
"""
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.data import CHUNKS_PER_PARENT, Chunk, chunk_boxes, dataset, parent_id  # noqa: E402

NAME = 'shards'
COLUMNS = ['shards', 'chunk_vectors', 'build_vectors_per_s', 'query_p50_ms', 'query_p95_ms',
           'p50_vs_1_shard', 'rss_per_shard_mib', 'rss_vs_1_shard_over_n',
           'graph_per_shard_mib', 'flow_index_images_per_s', 'startup_s']
_BATCH = 1000  # images per write, as bench/data.py builds


def _build_shard(job) -> float:
    """Write the images shard ``k`` of ``n`` owns into its ChunkIndex; returns seconds."""
    from loupe.ann import ChunkIndex
    from loupe.shard import shard_folder, shard_of

    cache, n_vectors, n_queries, folder, k, n, settings = job
    vectors, _ = dataset(cache, n_vectors, n_queries)
    boxes = chunk_boxes()
    owned = [p for p in range(n_vectors // CHUNKS_PER_PARENT) if shard_of(parent_id(p), n) == k]
    start = time.perf_counter()
    path = shard_folder(folder, k, n) / 'chunks'
    with ChunkIndex(path, save_every=None, **settings) as index:
        for first in range(0, len(owned), _BATCH):
            items = []
            for p in owned[first:first + _BATCH]:
                rows = vectors[p * CHUNKS_PER_PARENT:(p + 1) * CHUNKS_PER_PARENT]
                items.append((parent_id(p), [Chunk(box, kind, None, row) for (box, kind), row
                                             in zip(boxes, rows)], {}))
            index.upsert_many(items)
    return time.perf_counter() - start


def _shard_pids(folder: Path) -> list:
    """PIDs of this process tree's processes that map a chunk index under ``folder``."""
    pids = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            maps = (entry / 'maps').read_text()
        except OSError:
            continue
        if f'{folder}/' in maps and 'data.mdb' in maps:
            pids.append(int(entry.name))
    return pids


def measure(args, n_vectors: int, shards: int, settings: dict) -> dict:
    import numpy as np
    from docarray import DocList

    from loupe.ann import ChunkHits
    from loupe.flows import PROJECT_ROOT, jina_defaults
    from loupe.scaling import scale_config
    from loupe.schema import Chunk as ChunkDoc, ImageDoc
    from loupe.transport import GrpcGateway

    cache = common.cache_dir(args, 'vectors')
    workspace = common.cache_dir(args, 'shards', f'{n_vectors}-{shards}')
    folder = workspace / 'ChunkIndexer'
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    jobs = [(cache, n_vectors, args.queries, folder, k, shards, settings) for k in range(shards)]
    dataset(cache, n_vectors, args.queries)  # generated once, before the workers read it
    start = time.perf_counter()
    with multiprocessing.get_context('fork').Pool(shards) as pool:
        pool.map(_build_shard, jobs)
    build_s = time.perf_counter() - start
    # The graph each shard holds in memory, apart from the process's own baseline.
    graphs = [f.stat().st_size for f in folder.rglob('chunks.usearch')]

    os.environ['LOUPE_WORKSPACE'] = str(workspace)
    jina_defaults()
    from jina import Flow

    config = {'jtype': 'Flow', 'with': {'protocol': 'grpc', 'port': common.free_port()},
              'executors': [{'name': 'indexer', 'uses_with': settings, 'uses': str(
                  PROJECT_ROOT / 'executors' / 'chunk_indexer' / 'config.yml')}]}
    scale_config(config, shards=shards)
    _, queries = dataset(cache, n_vectors, args.queries)
    start = time.perf_counter()
    with Flow.load_config(config) as flow:
        startup_s = time.perf_counter() - start
        gateway = GrpcGateway('127.0.0.1', flow.port)

        def search(i):
            query = ImageDoc(embedding=np.asarray(queries[i % len(queries)]))
            (doc,) = gateway.post('/search', DocList[ImageDoc]([query]), {'limit': 10},
                                  return_type=DocList[ImageDoc])
            assert len(ChunkHits.from_bytes(doc.chunk_hits)) == 100

        samples = common.latencies(search, args.queries, warmup=5)
        rss = [common.rss_bytes(str(pid)) for pid in _shard_pids(folder)]
        rng = np.random.default_rng(1)
        boxes = chunk_boxes()
        new = []
        for i in range(args.index_images):
            vectors = rng.standard_normal((CHUNKS_PER_PARENT, queries.shape[1]))
            new.append(ImageDoc(id=f'new{i:06d}', chunks=[
                ChunkDoc(box=box, kind=kind, embedding=v.astype(np.float32))
                for (box, kind), v in zip(boxes, vectors)]))
        start = time.perf_counter()
        for first in range(0, len(new), 50):
            gateway.post('/index', DocList[ImageDoc](new[first:first + 50]),
                         return_type=DocList[ImageDoc])
        index_s = time.perf_counter() - start
        gateway.post('/delete', DocList[ImageDoc]([ImageDoc(id=d.id) for d in new]),
                     return_type=DocList[ImageDoc])
        gateway.close()
    assert len(rss) == shards, f'found {len(rss)} shard processes, expected {shards}'
    return {'shards': shards, 'chunk_vectors': n_vectors, 'build_s': build_s,
            'build_vectors_per_s': n_vectors / build_s, 'startup_s': startup_s,
            'query_p50_ms': common.percentile(samples, 50) * 1e3,
            'query_p95_ms': common.percentile(samples, 95) * 1e3,
            'rss_per_shard_mib': sum(rss) / len(rss) / 2 ** 20,
            'rss_per_shard_max_mib': max(rss) / 2 ** 20,
            'graph_per_shard_mib': sum(graphs) / len(graphs) / 2 ** 20,
            'flow_index_images_per_s': args.index_images / index_s}


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--vectors', type=int, default=1_000_000, help='chunk vectors in all')
    p.add_argument('--shards', default='1,2,4', help='shard counts to compare')
    p.add_argument('--queries', type=int, default=200, help='timed queries per shard count')
    p.add_argument('--index-images', type=int, default=1000,
                   help='images of 10 chunks indexed through the flow per shard count')
    args = p.parse_args(argv)
    if args.smoke:
        args.vectors, args.queries, args.index_images = 2000, 20, 50
        args.shards = '1,2'
    settings = {k: v for k, v in common.executor_settings('serve', 'indexer').items()
                if k in ('precision', 'connectivity', 'expansion_add', 'expansion_search')}
    rows = [measure(args, args.vectors, int(n), settings) for n in args.shards.split(',')]
    one = next((r for r in rows if r['shards'] == 1), None)
    for row in rows:
        if one:
            row['p50_vs_1_shard'] = row['query_p50_ms'] / one['query_p50_ms']
            row['rss_vs_1_shard_over_n'] = row['rss_per_shard_mib'] / (
                one['rss_per_shard_mib'] / row['shards'])
    notes = ['build: the shards in parallel processes on this machine\'s 2 cores',
             'rss_vs_1_shard_over_n: a shard\'s memory over (one shard\'s / N); 1.0 is 1/N']
    return common.finish(NAME, args, {'settings': settings, 'vectors': args.vectors}, rows,
                         COLUMNS, notes)


if __name__ == '__main__':
    main()
