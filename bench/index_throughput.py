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
METHODS = ('none', 'grid')


_ENCODERS = {}


def _encoder(clip: str):
    from executors.clip_encoder.executor import ClipEncoder

    if clip not in _ENCODERS:
        _ENCODERS[clip] = ClipEncoder(model=clip)
    return _ENCODERS[clip]


def direct_rate(files, clip: str, method: str, batch: int) -> float:
    """Images/s of Segmenter.index + ClipEncoder.index on batches of ``batch`` documents."""
    from docarray import DocList

    from loupe.schema import ImageDoc
    from loupe.sources import to_doc

    from executors.segmenter.executor import Segmenter

    segmenter, encoder = Segmenter(method=method), _encoder(clip)
    blobs = [to_doc(f) for f in files]

    def run(docs):
        for start in range(0, len(docs), batch):
            part = DocList[ImageDoc](docs[start:start + batch])
            encoder.index(segmenter.index(part, parameters={}), parameters={})
            assert all(c.embedding is not None for d in part for c in d.chunks)

    run([d.copy(deep=True) for d in blobs[:batch]])  # warm up
    docs = [d.copy(deep=True) for d in blobs]
    _, seconds = common.timed(run, docs)
    return len(docs) / seconds


def flow_rate(service, files, method: str, batch: int) -> float:
    """Images/s of ``Loupe.index`` into the running index flow, ``batch`` images per request."""
    client = service.client()
    client.index(files[:batch], batch_size=batch, skip_existing=False,
                 parameters={'method': method})  # warm up
    report, seconds = common.timed(client.index, files, batch_size=batch, skip_existing=False,
                                   parameters={'method': method})
    if report.errors or len(report.indexed) != len(files):
        raise RuntimeError(f'indexing failed: {report.errors[:3]}')
    return len(files) / seconds


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--batch-sizes', type=lambda s: [int(x) for x in s.split(',')],
                   help='images per request (and per direct call), default 8,16,32')
    p.add_argument('--count', type=lambda s: dict(zip(METHODS, map(int, s.split(',')))),
                   help='images for none,grid (default 128,48)')
    args = p.parse_args(argv)
    batches = args.batch_sizes or ([2] if args.smoke else [8, 16, 32])
    counts = args.count or ({'none': 4, 'grid': 4} if args.smoke else {'none': 128, 'grid': 48})
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
                    flow = flow_rate(service, subset, method, batch)
                    direct = direct_rate(subset, clip, method, batch)
                    rows.append({'method': method, 'batch_size': batch, 'images': len(subset),
                                 'flow_images_per_s': flow, 'direct_images_per_s': direct,
                                 'flow_vs_direct': flow / direct,
                                 'decode_preprocess_images_per_s':
                                     decode[method]['draft_images_per_s']})
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    columns = ['method', 'batch_size', 'images', 'flow_images_per_s', 'direct_images_per_s',
               'flow_vs_direct', 'decode_preprocess_images_per_s']
    notes = ['target: flow >= 0.90 x direct at the same batch size',
             'decode_preprocess: draft decoding + crops + model input, one thread']
    return common.finish(NAME, args, {'clip_model': clip, 'started_at': time.time()}, rows,
                         columns, notes)


if __name__ == '__main__':
    main()
