"""Reranking cost: the top 10 results through OWL-ViT in one batch versus one at a time.

The images are what the reranker reads: root-store previews (longest side 1024) of ten photos,
decoded with their original size. The text query is embedded once; then ``Reranker.detect``
runs on all ten in one batch, and on each image alone (ten forward passes). Passes alternate,
so a change of machine load hits both alike.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

NAME = 'rerank_batch'
# The table's columns: every row of the JSON has these keys (None where they do not apply).
COLUMNS = ['images', 'one_batch_s', 'one_at_a_time_s', 'batch_vs_single', 'per_image_batched_ms',
           'preprocess_ms_per_image', 'text_query_ms']
TOP_K = 10


def previews(args, n: int) -> list:
    from loupe.images import DecodedImage, decode
    from loupe.store import build_record

    out = []
    for f in common.image_files(args, n):
        record = build_record(f.stem, f.read_bytes())
        out.append(DecodedImage(image=decode(record.preview).image, width=record.width,
                                height=record.height))
    return out


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--repeat', type=int, help='timed passes of each way (default 3)')
    args = p.parse_args(argv)
    repeat = args.repeat or (1 if args.smoke else 3)
    from loupe.rerank import Reranker

    owl = common.owl_model(args)
    reranker = Reranker(owl, batch_size=TOP_K)
    images = previews(args, TOP_K)
    query, query_s = common.timed(reranker.text_query, 'a dog running on the beach')
    reranker.detect(images[:2], query)  # warm up
    batched, single = [], []
    for _ in range(repeat):
        batched.append(common.timed(reranker.detect, images, query)[1])
        single.append(common.timed(lambda: [reranker.detect([im], query) for im in images])[1])
    prep = common.timed(reranker._pixel_values, [reranker._square(im.image)[0] for im in images])[1]
    b, s = min(batched), min(single)
    rows = [{'images': len(images), 'one_batch_s': b, 'one_at_a_time_s': s,
             'batch_vs_single': b / s, 'per_image_batched_ms': b / len(images) * 1e3,
             'preprocess_ms_per_image': prep / len(images) * 1e3,
             'text_query_ms': query_s * 1e3}]
    notes = [f'OWL-ViT {reranker.input_size}x{reranker.input_size}, best of {repeat} passes each',
             'target: one batch <= 0.6 x one at a time']
    return common.finish(NAME, args, {'owl_model': owl, 'passes': {'batched': batched,
                                                                   'single': single}},
                         rows, COLUMNS, notes)


if __name__ == '__main__':
    main()
