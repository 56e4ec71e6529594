"""ANN quality and cost of the chunk index: recall@10 versus exact search, build and search time,
resident memory per vector, at several sizes and index settings.

Synthetic CLIP-like chunk vectors (bench/data.py) are written through loupe.ann.ChunkIndex as the
indexer writes them (cached under bench-cache/ann/); each index is then opened in a fresh process
so that its resident memory can be read off, and searched one query at a time with
``ChunkIndex.search(query, 10)`` (what a search costs, LMDB records included) and on the bare
usearch graph. Recall@10 counts the exact top 10 (float32 cosine over all vectors) found.

``--peers`` compares loupe with bare usearch, faiss and hnswlib instead (see bench/peers.py).
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.data import build_chunk_index, cached_top_k, dataset, index_name, row_of  # noqa: E402

NAME = 'ann'
PEERS_NAME = 'ann_peers'
PEER_COLUMNS = ['vectors', 'method', 'precision', 'connectivity', 'expansion_add', 'ef',
                'recall_at_10', 'p50_ms', 'p95_ms', 'graph_p50_ms', 'vs_graph', 'vs_graph_k100',
                'build_s', 'rss_bytes_per_vector', 'anon_bytes_per_vector']
# The table's columns: every row of the JSON has these keys (None where they do not apply).
COLUMNS = ['vectors', 'precision', 'connectivity', 'expansion_search', 'recall_at_10',
           'search_p50_ms', 'search_p95_ms', 'graph_search_p50_ms', 'build_s',
           'rss_bytes_per_vector', 'raw_bytes_per_vector', 'rss_vs_raw', 'rss_vs_f32',
           'lmdb_bytes_per_vector']
QUERIES = 1000
BYTES = {'f32': 4, 'f16': 2, 'i8': 1}


def parse_setting(text: str) -> dict:
    """``f16-16-128``: precision, connectivity, expansion_add."""
    precision, connectivity, expansion_add = text.split('-')
    return {'precision': precision, 'connectivity': int(connectivity),
            'expansion_add': int(expansion_add)}


def measure(job: dict) -> dict:
    """In a fresh process: open the index, read the memory it took, search with each
    expansion_search; returns the figures."""

    from loupe.ann import ChunkIndex

    vectors, queries = dataset(Path(job['cache']), job['n'], job['queries'], job['dim'])
    truth = cached_top_k(Path(job['cache']), vectors, queries, 10)
    del vectors
    before = common.rss_bytes()
    index = ChunkIndex(job['path'])
    opened = common.rss_bytes()
    try:
        graph = index.graph  # the bare usearch graph, to show what the wrapper adds
        out = {'rss_bytes': opened - before, 'usearch_bytes': int(graph.memory_usage),
               'lmdb_bytes': (Path(job['path']) / 'meta' / 'data.mdb').stat().st_size,
               'graph_file_bytes': (Path(job['path']) / 'chunks.usearch').stat().st_size,
               'runs': []}
        for query in queries:  # untimed: bring the LMDB pages the queries touch into memory
            index.search(query, 10)
        for ef in job['expansion_search']:
            graph.expansion_search = ef
            found = []

            def search(i):
                found.append(index.search(queries[i % len(queries)], 10)[0])

            samples = common.latencies(search, len(queries), warmup=0)
            hits = found[:len(queries)]
            recall = np.mean([len({row_of(h.parent_id, h.box) for h in hs} & set(truth[i])) / 10
                              for i, hs in enumerate(hits)])
            bare = common.latencies(lambda i: graph.search(queries[i % len(queries)], 10),
                                    len(queries), warmup=10)
            out['runs'].append({'expansion_search': ef, 'recall_at_10': float(recall),
                                'search': common.summary_ms(samples),
                                'graph_search': common.summary_ms(bare)})
        return out
    finally:
        index.close()


def measure_peer(job: dict) -> dict:
    """In a fresh process: load one method's saved index (loupe: open the ChunkIndex), read the
    memory it took, then recall@10 and latency one query at a time for each ef."""

    from bench import peers

    vectors, queries = dataset(Path(job['cache']), job['n'], job['queries'], job['dim'])
    truth = cached_top_k(Path(job['cache']), vectors, queries, 10)
    del vectors
    method, folder = job['method'], Path(job['path'])
    before, anon_before = common.rss_bytes(), common.rss_bytes(field='RssAnon')
    if method == 'loupe':
        from loupe.ann import ChunkIndex

        index = ChunkIndex(folder)

        def search(q, k):  # what the indexer gets: hit columns (rows are read after timing)
            return index.search(q, k)[0]

        def set_ef(ef):
            index.graph.expansion_search = ef
    else:
        search, set_ef = peers.load(method, folder, job['n'], job['dim'], job['settings'])
    rss = common.rss_bytes() - before
    anon = common.rss_bytes(field='RssAnon') - anon_before
    for q in queries:  # untimed: touch the pages the queries need
        search(q, 10)
    runs = []
    for ef in job['ef']:
        set_ef(ef)
        found = []
        samples = common.latencies(lambda i: found.append(search(queries[i], 10)), len(queries),
                                   warmup=0)
        overhead = {}
        if method == 'loupe':  # ChunkIndex.search vs its own bare graph, alternating queries
            overhead = wrapper_overhead(lambda q: index.search(q, 10),
                                        lambda q: index.graph.search(q, 10, threads=1), queries)
            # k = 100: the chunk hits the query flow's indexer fetches
            at_100 = wrapper_overhead(lambda q: index.search(q, 100),
                                      lambda q: index.graph.search(q, 100, threads=1), queries)
            overhead.update({f'{key}_k100': value for key, value in at_100.items()})
        if method == 'loupe':
            found = [[row_of(h.parent_id, h.box) for h in hits] for hits in found]
        recall = np.mean([len(set(np.asarray(f).tolist()) & set(truth[i].tolist())) / 10
                          for i, f in enumerate(found)])
        runs.append({'ef': ef, 'recall_at_10': float(recall), **common.summary_ms(samples),
                     **overhead})
    return {'rss_bytes': rss, 'anon_bytes': anon, 'runs': runs}


def wrapper_overhead(wrapped, bare, queries, rounds: int = 3) -> dict:
    """p50 of ``wrapped`` and ``bare`` on alternating queries, in one process: a load that
    changes during the run shifts both alike (separate processes, minutes apart, do not)."""
    times = ([], [])
    for r in range(rounds):
        for i, q in enumerate(queries):
            which = (i + r) % 2
            start = time.perf_counter()
            (wrapped if which == 0 else bare)(q)
            times[which].append(time.perf_counter() - start)
    p50 = [common.percentile(t, 50) * 1e3 for t in times]
    return {'graph_p50_ms': p50[1], 'vs_graph': p50[0] / p50[1]}


def build_peer(job: dict) -> dict:
    from bench import peers

    vectors, _ = dataset(Path(job['cache']), job['n'], job['queries'], job['dim'])
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return {'build_s': peers.build(job['method'], vectors, Path(job['path']), job['settings'])}


def datasets(cache: Path, sizes, queries: int):
    """(size, vectors, dimension) for each size, the exact top 10 of the queries cached."""
    for n in sizes:
        vectors, query_vectors = dataset(cache, n, queries)
        cached_top_k(cache, vectors, query_vectors, 10)
        yield n, vectors, vectors.shape[1]


def run_peers(args, sizes, settings, efs, queries, cache) -> dict:
    from bench import peers

    rows = []
    for n, vectors, dim in datasets(cache, sizes, queries):
        for s in settings:
            for method in args.methods or peers.METHODS:
                if method == 'loupe':
                    path = common.cache_dir(args, 'ann') / index_name(vectors, s)
                    build_s = build_chunk_index(path, vectors, s)['build_s']
                else:
                    path = common.cache_dir(args, 'peers', index_name(vectors, s), method)
                    marker = path / 'built.json'
                    if not marker.exists():
                        built = run_job('--build-peer', {
                            'cache': str(cache), 'n': n, 'queries': queries, 'dim': dim,
                            'method': method, 'path': str(path), 'settings': s})
                        marker.write_text(json.dumps(built))
                    build_s = json.loads(marker.read_text())['build_s']
                m = run_job('--measure-peer', {
                    'cache': str(cache), 'n': n, 'queries': queries, 'dim': dim,
                    'method': method, 'path': str(path), 'settings': s, 'ef': efs})
                for r in m['runs']:
                    precision = s['precision'] if method in ('loupe', 'usearch') else 'f32'
                    rows.append({'vectors': n, 'method': method, **s, 'precision': precision,
                                 'ef': r['ef'],
                                 'recall_at_10': r['recall_at_10'], 'p50_ms': r['p50_ms'],
                                 'p95_ms': r['p95_ms'], 'graph_p50_ms': r.get('graph_p50_ms'),
                                 'vs_graph': r.get('vs_graph'),
                                 'graph_p50_ms_k100': r.get('graph_p50_ms_k100'),
                                 'vs_graph_k100': r.get('vs_graph_k100'), 'build_s': build_s,
                                 'rss_bytes_per_vector': m['rss_bytes'] / n,
                                 'anon_bytes_per_vector': m['anon_bytes'] / n})
    notes = [f'{queries} held-out queries, one at a time, k = 10; same vectors, M and '
             f'efConstruction for every method; ef = efSearch / expansion_search',
             'build: all cores; loupe writes its LMDB records too (upsert_many as the indexer)',
             'rss = resident memory taken by loading the saved index in a fresh process; anon: '
             'without mapped file pages (loupe reads its LMDB records at open: the OS can drop '
             'those pages, not the graph or the hit table)',
             'graph_p50_ms / vs_graph (loupe rows): the same queries through ChunkIndex.search and '
             'through its bare usearch graph, alternating in one process',
             'goal: at recall@10 0.95 and 0.99, loupe p50 below faiss and hnswlib, and within '
             '1.3 x usearch']
    return common.finish(PEERS_NAME, args, {'queries': queries}, rows, PEER_COLUMNS, notes)


def run_job(flag: str, job: dict) -> dict:
    result = subprocess.run([sys.executable, __file__, flag, json.dumps(job)],
                            capture_output=True, text=True, timeout=3600)
    if result.returncode:
        raise RuntimeError(f'{flag} {job.get("method")} {job["path"]} failed:\n'
                           f'{result.stderr[-3000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_measure(job: dict) -> dict:
    result = subprocess.run([sys.executable, __file__, '--measure', json.dumps(job)],
                            capture_output=True, text=True, timeout=3600)
    if result.returncode:
        raise RuntimeError(f'measuring {job["path"]} failed:\n{result.stderr[-3000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--sizes', type=lambda s: [int(float(x)) for x in s.split(',')],
                   help='chunk vectors (default 10000,100000,1000000)')
    p.add_argument('--settings', type=lambda s: [parse_setting(x) for x in s.split(',')],
                   help='precision-connectivity-expansion_add, comma-separated (default '
                        'f16-16-128,f32-16-128,i8-16-128,f16-32-128)')
    p.add_argument('--ef', type=lambda s: [int(x) for x in s.split(',')],
                   help='expansion_search values (default 64,128,256)')
    p.add_argument('--peers', action='store_true',
                   help='compare loupe with bare usearch, faiss IndexHNSWFlat and hnswlib '
                        '(JSON: bench/results/ann_peers.json)')
    p.add_argument('--methods', type=lambda s: s.split(','),
                   help='with --peers: methods to run (default loupe,usearch,faiss,hnswlib)')
    for hidden in ('--measure', '--measure-peer', '--build-peer'):
        p.add_argument(hidden, help=argparse_hidden())
    args = p.parse_args(argv)
    for flag, job in ((args.measure, measure), (args.measure_peer, measure_peer),
                      (args.build_peer, build_peer)):
        if flag:
            print(json.dumps(job(json.loads(flag))))
            return {}
    sizes = args.sizes or ([2000] if args.smoke else [10_000, 100_000, 1_000_000])
    settings = args.settings or [parse_setting(s) for s in (
        ['f16-16-128', 'i8-16-128'] if args.smoke else
        ['f16-16-128', 'f32-16-128', 'i8-16-128', 'f16-32-128'])]
    efs = args.ef or ([64] if args.smoke else [64, 128, 256])
    queries = 50 if args.smoke else QUERIES
    cache = common.cache_dir(args, 'vectors')
    if args.peers:
        return run_peers(args, sizes, settings[:1] if not args.settings else settings,
                         args.ef or ([64] if args.smoke else [16, 32, 64, 128, 256]),
                         queries, cache)
    rows = []
    for n, vectors, dim in datasets(cache, sizes, queries):
        for s in settings:
            path = common.cache_dir(args, 'ann') / index_name(vectors, s)
            built = build_chunk_index(path, vectors, s)
            m = run_measure({'cache': str(cache), 'n': n, 'queries': queries, 'dim': dim,
                             'path': str(path), 'expansion_search': efs})
            raw = BYTES[s['precision']] * dim
            for r in m['runs']:
                rows.append({
                    'vectors': n, 'precision': s['precision'], 'connectivity': s['connectivity'],
                    'expansion_add': s['expansion_add'], 'expansion_search': r['expansion_search'],
                    'recall_at_10': r['recall_at_10'],
                    'search_p50_ms': r['search']['p50_ms'], 'search_p95_ms': r['search']['p95_ms'],
                    'graph_search_p50_ms': r['graph_search']['p50_ms'],
                    'build_s': built['build_s'], 'build_us_per_vector': built['build_s'] / n * 1e6,
                    'rss_bytes_per_vector': m['rss_bytes'] / n,
                    'usearch_bytes_per_vector': m['usearch_bytes'] / n,
                    'raw_bytes_per_vector': raw,
                    'rss_vs_raw': m['rss_bytes'] / n / raw,
                    'rss_vs_f32': m['rss_bytes'] / n / (BYTES['f32'] * dim),
                    'lmdb_bytes_per_vector': m['lmdb_bytes'] / n,
                    'search': r['search'], 'graph_search': r['graph_search']})
    notes = [f'{queries} held-out queries, one at a time; k = 10; {dim}-d vectors',
             'search = ChunkIndex.search (graph + LMDB records; i8 re-scores 4x candidates '
             'with the float16 LMDB copy); graph_search = bare usearch',
             'rss = resident memory taken by opening the index (the graph; LMDB pages are '
             'mapped on demand); raw = vectors x dims x bytes of the graph precision; '
             'f32 = the float32 vectors as the encoder makes them',
             'targets at 1M: recall@10 >= 0.95 with search p50 <= 2 ms; memory <= 1.3 x the '
             'raw bytes of the stored vectors']
    return common.finish(NAME, args, {'queries': queries, 'dim': dim}, rows, COLUMNS, notes)


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == '__main__':
    main()
