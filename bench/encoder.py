"""Encoder precisions and backends on the same batches: speed, fidelity to fp32, machine share.

Variants (each on the same preprocessed coco128 batches, in interleaved passes so a change of
machine load hits all alike): the bare model (``Embedder.forward_images``) in ``fp32``,
``bf16`` (autocast; only where the CPU has native bf16), ``int8`` (dynamic quantisation), and
the ``backend: onnx`` image tower on ONNX Runtime (``onnx-fp32``, ``onnx-int8``); and the whole
embedder (``embedder-*``: ``embed_images`` from JPEG bytes, decoding and preprocessing included
on its prefetch thread), with ``vs_bare`` its speed over the bare model of the same variant.

Fidelity: cosine of each image embedding to fp32 (``cos_min``, ``cos_mean``), the same for text
queries (``text_cos_min``), and ``top10_overlap``: for each query "a photo of a {coco class}",
the share of fp32's top 10 coco128 images that the variant also ranks in its top 10.
``gflops_per_s`` = images/s x the model's FLOPs per image (torch's FlopCounterMode);
``peak_share`` = that over the machine's fp32 matmul rate (one large matmul, all threads).
"""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

NAME = 'encoder'
COLUMNS = ['variant', 'images_per_s', 'speedup_vs_fp32', 'vs_bare', 'cos_min', 'cos_mean',
           'text_cos_min', 'top10_overlap', 'gflops_per_s', 'peak_share']


def matmul_peak_gflops(n: int = 2048, repeat: int = 5) -> float:
    """Best fp32 GFLOP/s of an n x n matmul with torch's threads."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(common.timed(torch.mm, a, b)[1] for _ in range(repeat))
    return 2 * n ** 3 / best / 1e9


def flops_per_image(embedder, inputs: dict) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        embedder.forward_images({k: v[:1] for k, v in inputs.items()})
    return float(counter.get_total_flops())


def measure(args, clip: str, n_images: int, batch_size: int, repeat: int,
            onnx: bool) -> tuple:
    import numpy as np

    from loupe import precision as precisions
    from loupe.embedder import Embedder
    from loupe.onnx_backend import ENV_CACHE
    from loupe.tiny_models import COCO_NAMES

    blobs = [f.read_bytes() for f in common.image_files(args, n_images)]
    embedders = {'fp32': Embedder(clip, device='cpu')}
    skipped = []
    if precisions.cpu_has_native_bf16():
        embedders['bf16'] = Embedder(clip, device='cpu', precision='bf16')
    else:
        skipped.append('bf16: skipped, this CPU has no native bf16 (emulated bf16 is slower '
                       'than fp32)')
    embedders['int8'] = Embedder(clip, device='cpu', precision='int8')
    fp32 = embedders['fp32']
    images = [fp32.decode(b).image for b in blobs]
    batches = [fp32.preprocess(images[i:i + batch_size])
               for i in range(0, len(images), batch_size)]
    if onnx:  # the encoder's backend: onnx (exports into the benchmark's cache)
        os.environ[ENV_CACHE] = str(common.cache_dir(args, 'onnx'))
        embedders['onnx-fp32'] = Embedder(clip, device='cpu', backend='onnx')
        embedders['onnx-int8'] = Embedder(clip, device='cpu', backend='onnx', precision='int8')
    bare = {name: e.forward_images for name, e in embedders.items()}
    whole = {f'embedder-{name}': embedders[name] for name in ('fp32', 'int8', 'onnx-int8')
             if name in embedders}

    def run_bare(forward):
        return np.concatenate([forward(inputs) for inputs in batches])

    def run_whole(embedder):
        return embedder.embed_images((embedder.decode(b).image for b in blobs), batch_size)

    runners = {**{n: (run_bare, f) for n, f in bare.items()},
               **{n: (run_whole, e) for n, e in whole.items()}}
    for forward in bare.values():  # warm up: first-call allocations, ORT's plans
        forward(batches[0])
    vectors, seconds = {}, {name: 0.0 for name in runners}
    for _ in range(repeat):
        for name, (run, target) in runners.items():
            vectors[name], took = common.timed(run, target)
            seconds[name] += took

    queries = [f'a photo of a {name}' for name in COCO_NAMES]
    texts = {name: e.embed_texts(queries) for name, e in embedders.items()}
    ref, ref_text = vectors['fp32'], texts['fp32']
    top = {name: np.argsort(-(ref_text @ v.T), axis=1)[:, :10] for name, v in vectors.items()}
    peak = matmul_peak_gflops(512 if args.smoke else 2048)
    flops = flops_per_image(fp32, batches[0])
    rows = []
    for name in runners:
        rate = repeat * len(blobs) / seconds[name]
        cos = np.sum(vectors[name] * ref, axis=1)
        text = texts.get(name.replace('embedder-', ''))  # onnx: texts run on torch, fp32
        precision = name.replace('embedder-', '')
        overlap = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(top['fp32'], top[name])])
        rows.append({'variant': name, 'images_per_s': rate,
                     'cos_min': float(cos.min()), 'cos_mean': float(cos.mean()),
                     'text_cos_min': None if text is None else float(
                         np.sum(text * ref_text, axis=1).min()),
                     'top10_overlap': float(overlap), 'gflops_per_s': rate * flops / 1e9,
                     'peak_share': rate * flops / 1e9 / peak,
                     '_bare': precision if name.startswith('embedder') else None})
    base = rows[0]['images_per_s']
    by_name = {row['variant']: row for row in rows}
    for row in rows:
        row['speedup_vs_fp32'] = row['images_per_s'] / base
        bare_of = row.pop('_bare')
        if bare_of:
            row['vs_bare'] = row['images_per_s'] / by_name[bare_of]['images_per_s']
    info = {'matmul_peak_gflops': peak, 'gflops_per_image': flops / 1e9,
            'images': len(blobs), 'batch_size': batch_size, 'passes': repeat,
            'native_bf16': precisions.cpu_has_native_bf16()}
    return rows, info, skipped


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--count', type=int, help='images (default 32 of coco128)')
    p.add_argument('--batch-size', type=int, help='images per model call (default 16)')
    p.add_argument('--repeat', type=int, help='timed passes over the images (default 2)')
    p.add_argument('--no-onnx', action='store_true', help='leave out the ONNX Runtime variants')
    args = p.parse_args(argv)
    count = args.count or (4 if args.smoke else 32)
    batch_size = args.batch_size or (2 if args.smoke else 16)
    repeat = args.repeat or (1 if args.smoke else 2)
    started = time.perf_counter()
    rows, info, skipped = measure(args, common.clip_model(args), count, batch_size, repeat,
                                  onnx=not args.no_onnx)
    notes = skipped + [
        f'matmul peak {info["matmul_peak_gflops"]:.0f} GFLOP/s; the model costs '
        f'{info["gflops_per_image"]:.2f} GFLOP an image; {info["images"]} images, batch '
        f'{info["batch_size"]}, {info["passes"]} interleaved passes',
        'random weights have no activation outliers: trained checkpoints lose more under int8; '
        'confirm retrieval with `loupe eval captions --precision int8`']
    return common.finish(NAME, args, {'clip_model': common.clip_model(args), **info,
                                      'seconds': round(time.perf_counter() - started, 1)},
                         rows, COLUMNS, notes)


if __name__ == '__main__':
    main()
