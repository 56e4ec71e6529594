"""Indexing throughput: images/s through the running index flow versus the same segmenter +
encoder code called directly in a loop, for ``none`` and ``grid`` (3x3) chunking.

The flow is ``loupe serve --flow index`` (storage beside segmenter -> CLIP encoder -> chunk
indexer, joined), fed by loupe.client's ``Loupe.index`` over gRPC (files read and hashed by the
client, as a user indexes a folder), with ``batch_size`` images per request. The direct loop
calls the Segmenter and ClipEncoder executors' ``index`` methods in this process on batches of
the same size, on the same images already in memory: no transport, no storage, no index.
Decode + preprocess alone (bench/decode.py) is reported beside them.
"""
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.decode import measure as decode_rates  # noqa: E402

NAME = 'index_throughput'
# The table's columns: every row of the JSON has these keys (None where they do not apply).
COLUMNS = ['method', 'batch_size', 'images', 'flow_images_per_s', 'direct_images_per_s',
           'flow_vs_direct', 'decode_preprocess_images_per_s']
METHODS = ('none', 'grid')


_ENCODERS = {}


def _encoder(clip: str):
    from executors.clip_encoder.executor import ClipEncoder

    if clip not in _ENCODERS:
        settings = common.executor_settings('index', 'encoder')
        _ENCODERS[clip] = ClipEncoder(**{**settings, 'model': clip})
    return _ENCODERS[clip]


def direct_run(files, clip: str, method: str, batch: int):
    """A function indexing ``files`` by Segmenter.index + ClipEncoder.index on batches of
    ``batch`` documents, in this process; the documents are read before it is called."""
    from docarray import DocList

    from executors.segmenter.executor import Segmenter
    from loupe.schema import ImageDoc
    from loupe.sources import to_doc

    settings = common.executor_settings('index', 'segmenter')
    segmenter, encoder = Segmenter(**{**settings, 'method': method}), _encoder(clip)
    docs = [to_doc(f) for f in files]

    def run(n: int = len(docs)) -> None:
        fresh = [d.copy(deep=True) for d in docs[:n]]
        for start in range(0, len(fresh), batch):
            part = DocList[ImageDoc](fresh[start:start + batch])
            encoder.index(segmenter.index(part, parameters={}), parameters={})
            assert all(c.embedding is not None for d in part for c in d.chunks)

    return run


def flow_run(service, files, method: str, batch: int):
    """A function indexing ``files`` with ``Loupe.index`` into the running index flow,
    ``batch`` images per request."""
    client = service.client()

    def run(n: int = len(files)) -> None:
        report = client.index(files[:n], batch_size=batch, skip_existing=False,
                              parameters={'method': method})
        if report.errors or len(report.indexed) != n:
            raise RuntimeError(f'indexing failed: {report.errors[:3]}')

    return run


def rates(runs: dict, images: int, passes: int) -> dict:
    """Images/s of each run over ``passes`` passes; the runs alternate pass by pass, so a change
    of machine load hits them alike. One untimed batch-sized pass of each first."""
    seconds = {name: 0.0 for name in runs}
    for name, run in runs.items():
        run(min(images, 8))
    for _ in range(passes):
        for name, run in runs.items():
            seconds[name] += common.timed(run)[1]
    return {name: passes * images / s for name, s in seconds.items()}


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--batch-sizes', type=lambda s: [int(x) for x in s.split(',')],
                   help='images per request (and per direct call), default 8,16,32')
    p.add_argument('--count', type=lambda s: dict(zip(METHODS, map(int, s.split(',')))),
                   help='images for none,grid (default 128,32)')
    p.add_argument('--passes', type=int, help='timed passes of each way (default 2)')
    args = p.parse_args(argv)
    passes = args.passes or (1 if args.smoke else 2)
    batches = args.batch_sizes or ([2] if args.smoke else [8, 16, 32])
    counts = args.count or ({'none': 4, 'grid': 4} if args.smoke else {'none': 128, 'grid': 32})
    clip = common.clip_model(args)
    files = common.image_files(args)
    decode = {r['method']: r for r in decode_rates(args, clip, max(counts.values()), 1)}
    workspace = common.cache_dir(args, 'index-run')
    rows = []
    try:
        with common.serve('index', workspace, env={'LOUPE_CLIP_MODEL': clip}) as service:
            for method in METHODS:
                subset = files[:counts[method]]
                for batch in batches:
                    r = rates({'flow': flow_run(service, subset, method, batch),
                               'direct': direct_run(subset, clip, method, batch)},
                              len(subset), passes)
                    rows.append({'method': method, 'batch_size': batch, 'images': len(subset),
                                 'passes': passes, 'flow_images_per_s': r['flow'],
                                 'direct_images_per_s': r['direct'],
                                 'flow_vs_direct': r['flow'] / r['direct'],
                                 'decode_preprocess_images_per_s':
                                     decode[method]['draft_images_per_s']})
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    notes = ['target: flow >= 0.90 x direct at the same batch size',
             'decode_preprocess: draft decoding + crops + model input, one thread']
    return common.finish(NAME, args, {'clip_model': clip, 'started_at': time.time()}, rows,
                         COLUMNS, notes)


if __name__ == '__main__':
    main()
