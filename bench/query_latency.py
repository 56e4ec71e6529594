"""Text query latency through the running query flow, versus encoding + one ANN search directly.

For each index size, synthetic chunk vectors (bench/data.py) are written into the indexer's
workspace with loupe.ann.ChunkIndex (settings of the flow's indexer), and root-store records for
every image that a benchmark query can reach (the exact top 2000 chunks of each query) so
storage and the reranker have work to do. ``loupe serve --flow query`` then serves it, and a
loupe.client (gRPC) searches text with the reranker off and on (top 10). The direct cost is
``ClipEmbedder.embed_texts`` of the same text plus one ``ChunkIndex.search`` for as many chunk
hits as the indexer fetches, in this process; direct and flow queries alternate.
"""
import shutil
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.data import (CHUNKS_PER_PARENT, build_chunk_index, dataset, exact_top_k,  # noqa: E402
                        index_name, parent_id)

NAME = 'query_latency'
# The table's columns: every row of the JSON has these keys (None where they do not apply).
COLUMNS = ['chunk_vectors', 'direct_encode_p50_ms', 'direct_search_p50_ms', 'direct_p50_ms',
           'flow_p50_ms', 'flow_p95_ms', 'flow_p99_ms', 'flow_vs_direct_p50', 'rerank_p50_ms',
           'rerank_p95_ms', 'rerank_p99_ms']
TEXTS = [
    'a dog running on the beach', 'red car parked in the street', 'a person riding a bicycle',
    'two cats sleeping on a sofa', 'a plate of food on a wooden table', 'an airplane in the sky',
    'people holding umbrellas in the rain', 'a train at the station', 'a bowl of fruit',
    'a man playing tennis', 'a giraffe next to a tree', 'a laptop on a desk',
    'children playing football in a park', 'a boat on a lake', 'a clock on a tower',
    'a pizza with cheese and tomatoes', 'a bus on a city road', 'a teddy bear on a bed',
    'a horse in a field', 'skiers on a snowy mountain',
]
REACH = 2000  # exact top chunks per query whose images get a root-store record
QUERY_COUNT = 1000  # held-out query vectors of the shared dataset (used by bench/ann.py)


def indexer_settings() -> dict:
    """The chunk index settings the query flow's indexer runs with."""
    merged = common.executor_settings('query', 'indexer')
    return {k: merged[k] for k in ('precision', 'connectivity', 'expansion_add',
                                   'expansion_search')}


def chunk_limit(limit: int = 10) -> int:
    return max(100, 10 * limit)  # the indexer's default: enough chunk hits to rank `limit` images


def prepare(args, n: int, settings: dict, query_vectors) -> Path:
    """A workspace for the query flow: the cached chunk index and root-store records."""
    from loupe.images import content_hash
    from loupe.paths import STORAGE_NAME, STORE_DIR
    from loupe.store import ParentStore, build_record

    dim = query_vectors.shape[1]
    vectors, _ = dataset(common.cache_dir(args, 'vectors'), n, QUERY_COUNT, dim)
    index_path = common.cache_dir(args, 'ann') / index_name(vectors, settings)
    build_chunk_index(index_path, vectors, settings)
    workspace = common.cache_dir(args, 'query', f'{n}x{dim}')
    link = workspace / 'ChunkIndexer' / 'chunks'
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() != index_path.resolve():
        link.unlink()
    elif link.exists() and not link.is_symlink():
        shutil.rmtree(link)  # an index some flow made while the link was missing
    if not link.exists():
        link.symlink_to(index_path.resolve(), target_is_directory=True)
    reach = exact_top_k(vectors, query_vectors, min(REACH, len(vectors)))
    parents = sorted({int(row) // CHUNKS_PER_PARENT for row in reach.ravel()})
    store = ParentStore(workspace / STORAGE_NAME / STORE_DIR)
    try:
        missing = [p for p in parents if parent_id(p) not in store]
        if missing:
            photos = [build_record('x', f.read_bytes(), str(f)) for f in common.image_files(args)]
            records = []
            for p in missing:
                photo = photos[p % len(photos)]
                records.append(replace(photo, id=parent_id(p), tags={'album': f'a{p % 10}'},
                                       content_hash=content_hash(parent_id(p).encode())))
            store.put(records)
    finally:
        store.close()
    return workspace


def measure(embedder, service, workspace: Path, settings: dict, queries: int, limit: int):
    """Per query, seconds of: text encoding and chunk search directly in this process (one after
    the other, as the flow runs them), and the same text searched through the service.

    The two alternate query by query, so a change of machine load hits both alike.
    """
    from loupe.ann import ChunkIndex

    client = service.client()
    index = ChunkIndex(workspace / 'ChunkIndexer' / 'chunks',
                       expansion_search=settings['expansion_search'])
    encode, search, flow, results = [], [], [], []

    def one(i):
        text = TEXTS[i % len(TEXTS)]
        vector, seconds = common.timed(embedder.embed_texts, [text])
        encode.append(seconds)
        search.append(common.timed(index.search, vector, chunk_limit(limit))[1])
        found, seconds = common.timed(client.search, text, limit=limit)
        flow.append(seconds)
        results.append(len(found))

    try:
        common.latencies(one, queries)
    finally:
        index.close()
    return encode[-queries:], search[-queries:], flow[-queries:], results[-queries:]


def reranked(service, queries: int, limit: int):
    client = service.client()
    results = []

    def one(i):
        results.append(len(client.search(TEXTS[i % len(TEXTS)], limit=limit, rerank=True)))

    return common.latencies(one, queries, warmup=1), results[-queries:]


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--sizes', type=lambda s: [int(float(x)) for x in s.split(',')],
                   help='chunk vectors in the index (default 10000,100000,1000000)')
    p.add_argument('--queries', type=int, help='timed queries per size, reranker off')
    p.add_argument('--rerank-queries', type=int, help='timed queries per size, reranker on')
    p.add_argument('--limit', type=int, default=10)
    args = p.parse_args(argv)
    sizes = args.sizes or ([2000] if args.smoke else [10_000, 100_000, 1_000_000])
    queries = args.queries or (4 if args.smoke else 200)
    rerank_queries = args.rerank_queries or (1 if args.smoke else 8)
    clip, owl = common.clip_model(args), common.owl_model(args)
    env = {'LOUPE_CLIP_MODEL': clip, 'LOUPE_OWL_MODEL': owl}
    settings = indexer_settings()
    from loupe.clip import ClipEmbedder

    embedder = ClipEmbedder(clip)
    text_vectors = embedder.embed_texts(TEXTS)
    rows = []
    for n in sizes:
        workspace = prepare(args, n, settings, text_vectors)
        with common.serve('query', workspace, env=env) as service:
            encode, search, off, off_results = measure(embedder, service, workspace, settings,
                                                       queries, args.limit)
            on, on_results = reranked(service, rerank_queries, args.limit)
        both = [a + b for a, b in zip(encode, search)]
        d, f, r = common.summary_ms(both), common.summary_ms(off), common.summary_ms(on)
        rows.append({
            'chunk_vectors': n,
            'direct_encode_p50_ms': common.summary_ms(encode)['p50_ms'],
            'direct_search_p50_ms': common.summary_ms(search)['p50_ms'],
            'direct_p50_ms': d['p50_ms'],
            'flow_p50_ms': f['p50_ms'], 'flow_p95_ms': f['p95_ms'], 'flow_p99_ms': f['p99_ms'],
            'flow_vs_direct_p50': f['p50_ms'] / d['p50_ms'],
            'rerank_p50_ms': r['p50_ms'], 'rerank_p95_ms': r['p95_ms'],
            'rerank_p99_ms': r['p99_ms'],
            'results_per_query': sum(off_results) / len(off_results),
            'reranked_results_per_query': sum(on_results) / len(on_results),
            'queries': queries, 'rerank_queries': rerank_queries,
            'direct': d, 'flow': f, 'flow_rerank': r})
    notes = [f'index settings {settings}; chunk hits per query {chunk_limit(args.limit)}; '
             f'results limit {args.limit}; reranker top 10',
             'target: flow p50 (reranker off) <= 1.5 x direct p50 at 1M chunk vectors']
    return common.finish(NAME, args, {'settings': settings, 'clip_model': clip, 'owl_model': owl},
                         rows, COLUMNS, notes)


if __name__ == '__main__':
    main()
