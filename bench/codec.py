"""What loupe's protobuf codec (loupe.wire) saves per query, against docarray's own codec.

Each hop of the query flow writes the request's documents to protobuf and the next executor
reads them back. This times that round trip (``DocList.to_protobuf`` -> bytes -> ``from_protobuf``)
for the documents each hop of a text query carries: the query with its embedding (gateway ->
encoder -> indexer), the query with 100 chunk hits (indexer -> ranker), the query with its 10
results (ranker -> reranker -> storage -> gateway). One process per codec, selected as a user
would, with ``LOUPE_FAST_CODEC`` (1: loupe.wire, 0: docarray's).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ''):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

NAME = 'codec'
COLUMNS = ['documents', 'hops', 'fast_us', 'docarray_us', 'saved_us_per_query', 'fast_vs_docarray']
# (what a hop carries, how many hops of a text query carry it)
SHAPES = {'query + embedding': 2, 'query + 100 chunk hits': 1, 'query + 10 results': 3}


def _documents(shape: str):
    import numpy as np
    from docarray import DocList

    from loupe.rank import chunk_match
    from loupe.schema import ImageDoc, Match

    rng = np.random.default_rng(0)
    query = ImageDoc(text='a dog running on the beach',
                     embedding=rng.standard_normal(512).astype(np.float32))
    if shape == 'query + 100 chunk hits':
        query.matches = DocList[Match](
            chunk_match(f'{i // 3:032x}', float(rng.random()), [10.0, 20.0, 110.0, 220.0], 'grid')
            for i in range(100))
    elif shape == 'query + 10 results':
        query.embedding = None
        query.matches = DocList[Match](
            Match(id=f'{i:032x}', parent_id=f'{i:032x}', uri=f'/photos/{i}.jpg', width=640,
                  height=480, tags={'album': 'trip'}, score=0.3, scores={'chunk': 0.3},
                  highlight_box=[10.0, 20.0, 110.0, 220.0], highlight_source='chunk',
                  chunk_kind='grid') for i in range(10))
    return DocList[ImageDoc]([query])


def _worker(repeat: int) -> dict:
    """Microseconds per round trip of each shape, with the codec this process was started with."""
    import time

    from docarray import DocList
    from docarray.proto import DocListProto

    from loupe.schema import ImageDoc

    out = {}
    for shape in SHAPES:
        docs = _documents(shape)

        def round_trip():
            data = docs.to_protobuf().SerializeToString()
            DocList[ImageDoc].from_protobuf(DocListProto.FromString(data))

        for _ in range(20):
            round_trip()
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            for _ in range(20):
                round_trip()
            samples.append((time.perf_counter() - started) / 20 * 1e6)
        out[shape] = min(samples)
    return out


def _measure(fast: bool, repeat: int) -> dict:
    env = dict(os.environ, LOUPE_FAST_CODEC='1' if fast else '0')
    done = subprocess.run([sys.executable, __file__, '--worker', str(repeat)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--repeat', type=int, help='timed passes of 20 round trips (default 15)')
    args = p.parse_args(argv)
    repeat = args.repeat or (2 if args.smoke else 15)
    fast, plain = _measure(True, repeat), _measure(False, repeat)
    rows = []
    for shape, hops in SHAPES.items():
        rows.append({'documents': shape, 'hops': hops, 'fast_us': fast[shape],
                     'docarray_us': plain[shape],
                     'saved_us_per_query': (plain[shape] - fast[shape]) * hops,
                     'fast_vs_docarray': fast[shape] / plain[shape]})
    total_fast = sum(fast[s] * h for s, h in SHAPES.items())
    total_plain = sum(plain[s] * h for s, h in SHAPES.items())
    rows.append({'documents': 'a text query, all hops', 'hops': sum(SHAPES.values()),
                 'fast_us': total_fast, 'docarray_us': total_plain,
                 'saved_us_per_query': total_plain - total_fast,
                 'fast_vs_docarray': total_fast / total_plain})
    notes = [f'best of {repeat} passes of 20 round trips (write + bytes + read) per shape, '
             'one process per codec (LOUPE_FAST_CODEC=1 / 0)']
    return common.finish(NAME, args, {'fast_us': fast, 'docarray_us': plain}, rows, COLUMNS,
                         notes)


if __name__ == '__main__':
    if sys.argv[1:2] == ['--worker']:
        print(json.dumps(_worker(int(sys.argv[2]))))
    else:
        main()
