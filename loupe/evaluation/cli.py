"""``loupe eval proposals|retrieval|captions|query-by-example``: print a table, write JSON/PNGs.

Building the parser imports nothing heavy (every ``loupe`` command builds it): models, torch
and the evaluations are imported when an evaluation runs.
"""
import argparse
import os
import sys
import time
from typing import Callable, Dict

from loupe.constants import (
    DEFAULT_CLIP_MODEL, DEFAULT_DETECTOR_MODEL, DEFAULT_DINO_MODEL, DEFAULT_OWL_MODEL,
    ENV_CLIP_MODEL, ENV_DETECTOR_MODEL, ENV_DINO_MODEL, ENV_OWL_MODEL, PRECISIONS, BACKENDS)
from loupe.config import EncoderSettings, RankerSettings
from loupe.errors import InvalidRequestError
from loupe.evaluation.defaults import (
    DEFAULT_CAPTIONS_PER_IMAGE, DEFAULT_METHODS, DEFAULT_MIN_SIDE, DEFAULT_PROMPT,
    DEFAULT_RERANK_TOP)

_QUIET_LOADING = {'TRANSFORMERS_VERBOSITY': 'error', 'HF_HUB_DISABLE_PROGRESS_BARS': '1'}
SPEC_HELP = ('comma-separated partition methods, each METHOD[:ROWSxCOLS][+OPTION...], e.g. '
             'none,grid,grid:4x4,grid:3x3+overlap0.25,grid:3x3+levels2,detector,dino '
             f'(default {DEFAULT_METHODS})')


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {value}')
    return value


def _parents() -> Dict[str, argparse.ArgumentParser]:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--data', required=True, metavar='DIR', help='the data set folder')
    common.add_argument('--split', help='YOLO: a folder under images/; COCO: part of the '
                                        'annotation file name; Karpathy: test (default), val, '
                                        'train, restval or all')
    common.add_argument('--limit-images', type=_positive, metavar='N',
                        help='only the first N images')
    common.add_argument('--json', metavar='FILE', help='write the full result as JSON')
    common.add_argument('--plot', metavar='DIR', help='write PNG charts (needs loupe[eval])')
    common.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto')
    common.add_argument('--quiet', action='store_true', help='no progress bars')

    methods = argparse.ArgumentParser(add_help=False)
    methods.add_argument('--methods', default=DEFAULT_METHODS, help=SPEC_HELP)
    methods.add_argument('--detector-model', help=f'${ENV_DETECTOR_MODEL} or '
                                                  f'{DEFAULT_DETECTOR_MODEL}')
    methods.add_argument('--dino-model', help=f'${ENV_DINO_MODEL} or {DEFAULT_DINO_MODEL}')

    clip = argparse.ArgumentParser(add_help=False)
    clip.add_argument('--clip-model', help=f'${ENV_CLIP_MODEL} or {DEFAULT_CLIP_MODEL}')
    clip.add_argument('--batch-size', type=_positive, default=EncoderSettings.batch_size,
                      help='encoder batch size')
    clip.add_argument('--precision', default='fp32', choices=PRECISIONS,
                      help='encoder precision (see loupe.precision): fp32, int8, bf16, fp16')
    clip.add_argument('--backend', default='torch', choices=BACKENDS,
                      help='encoder image tower: torch, or onnx (ONNX Runtime, CPU)')

    ranking = argparse.ArgumentParser(add_help=False)
    ranking.add_argument('--aggregation', default=RankerSettings.aggregation,
                         help='chunk scores -> image score, as the ranker: max (default), mean, '
                              'sum_top_k')
    ranking.add_argument('--top-k', type=_positive, default=RankerSettings.top_k,
                         help='for sum_top_k')
    ranking.add_argument('--rerank', action='store_true',
                         help='also evaluate each method with the OWL reranker on')
    ranking.add_argument('--owl-model', help=f'${ENV_OWL_MODEL} or {DEFAULT_OWL_MODEL}')
    ranking.add_argument('--rerank-top', type=_positive, default=DEFAULT_RERANK_TOP,
                         help=f'results reranked per query (default {DEFAULT_RERANK_TOP})')
    ranking.add_argument('--rerank-weight', type=float,
                         help="weight of the detection score in the final score (default: the "
                              "reranker's, 0.5)")
    return {'common': common, 'methods': methods, 'clip': clip, 'ranking': ranking}


def add_parser(subparsers, formatter_class=argparse.HelpFormatter) -> None:
    """Add ``eval`` and its four evaluations to the ``loupe`` command's subparsers."""
    parent = _parents()
    p = subparsers.add_parser(
        'eval', help='measure localisation and retrieval on annotated data',
        formatter_class=formatter_class,
        description='Measure localisation and retrieval on an annotated data set: prints a '
                    'table; --json FILE writes every figure, --plot DIR charts. Model flags '
                    'take a hub id or a local folder; precedence: flag > LOUPE_*_MODEL '
                    'environment variable > default.')
    evaluations = p.add_subparsers(dest='evaluation', required=True)

    def add(name, run, parents, help):
        q = evaluations.add_parser(name, parents=[parent[n] for n in parents], help=help,
                                   formatter_class=formatter_class)
        q.set_defaults(func=cmd_eval, run=run)
        return q

    add('proposals', _proposals, ['common', 'methods'],
        'share of ground-truth objects covered by a chunk (no CLIP needed)')
    q = add('retrieval', _retrieval, ['common', 'methods', 'clip', 'ranking'],
            'class names as text queries: recall, mAP, highlight hit rate')
    q.add_argument('--prompt', default=DEFAULT_PROMPT, help='query template, {} is the class')
    q = add('captions', _captions, ['common', 'clip'],
            'caption retrieval, text -> image and image -> text (whole images)')
    q.add_argument('--captions-per-image', type=_positive, default=DEFAULT_CAPTIONS_PER_IMAGE)
    q = add('query-by-example', _examples, ['common', 'methods', 'clip', 'ranking'],
            'object crops as image queries: source found, highlight IoU')
    q.add_argument('--min-side', type=float, default=DEFAULT_MIN_SIDE,
                   help='smallest object side (pixels) used as a query')
    q.add_argument('--max-queries', type=_positive, help='at most N crops, spread evenly')


# --- runs ---------------------------------------------------------------------------------------

def _partitioner(args):
    from loupe.segment import Partitioner

    return Partitioner(detector_model=args.detector_model, dino_model=args.dino_model,
                       device=args.device)


def _embedder(args):
    from loupe.embedder import Embedder

    return Embedder(args.clip_model, batch_size=args.batch_size, device=args.device,
                    precision=args.precision, backend=args.backend)


def _boxes(args):
    from loupe.evaluation.datasets import load_boxes

    return load_boxes(args.data, args.split, args.limit_images)


def _partition_models(args, specs) -> dict:
    from loupe.models import resolve_checkpoint

    used = {s.settings.method for s in specs}
    models = {}
    if 'detector' in used:
        models['detector'] = resolve_checkpoint(args.detector_model, ENV_DETECTOR_MODEL,
                                                DEFAULT_DETECTOR_MODEL)
    if 'dino' in used:
        models['dino'] = resolve_checkpoint(args.dino_model, ENV_DINO_MODEL, DEFAULT_DINO_MODEL)
    return models


def _proposals(args) -> dict:
    from loupe.evaluation.proposals import evaluate_proposals
    from loupe.evaluation.specs import parse_specs

    partitioner = _partitioner(args)
    specs = parse_specs(args.methods, partitioner)  # before reading the data: fail fast
    dataset = _boxes(args)
    result = evaluate_proposals(dataset, specs, partitioner, progress=not args.quiet)
    return {**result, 'models': _partition_models(args, specs)}


def _ranked(args, evaluate, **extra) -> dict:
    """Retrieval and query by example: the same models, index and reranking."""
    from loupe.evaluation.reranking import RerankStage
    from loupe.evaluation.specs import parse_specs
    from loupe.rank import AGGREGATIONS

    if args.aggregation not in AGGREGATIONS:
        raise InvalidRequestError(f'unknown aggregation {args.aggregation!r}; valid: '
                                  f'{", ".join(sorted(AGGREGATIONS))}')
    partitioner = _partitioner(args)
    specs = parse_specs(args.methods, partitioner)  # before reading the data: fail fast
    dataset = _boxes(args)
    embedder = _embedder(args)
    models = {'clip': embedder.checkpoint, **_partition_models(args, specs)}
    stage = None
    if args.rerank:
        from loupe.rerank import Reranker

        reranker = Reranker(args.owl_model, device=args.device)
        models['owl'] = reranker.checkpoint
        stage = RerankStage(reranker, [im.path for im in dataset.images], args.rerank_top,
                            args.rerank_weight)
    result = evaluate(dataset, specs, partitioner, embedder, stage, aggregation=args.aggregation,
                      top_k=args.top_k, progress=not args.quiet, **extra)
    return {**result, 'models': models}


def _retrieval(args) -> dict:
    from loupe.evaluation.retrieval import evaluate_retrieval

    return _ranked(args, evaluate_retrieval, prompt=args.prompt)


def _examples(args) -> dict:
    from loupe.evaluation.examples import evaluate_query_by_example

    return _ranked(args, evaluate_query_by_example, min_side=args.min_side,
                   max_queries=args.max_queries)


def _captions(args) -> dict:
    from loupe.evaluation.captions import evaluate_captions
    from loupe.evaluation.datasets import load_captions

    dataset = load_captions(args.data, args.split, args.limit_images, args.captions_per_image)
    embedder = _embedder(args)
    result = evaluate_captions(dataset, embedder, progress=not args.quiet)
    return {**result, 'models': {'clip': embedder.checkpoint}}


def cmd_eval(args) -> int:
    from loupe.evaluation.report import failures, table, write_json

    # Model-loading progress bars would bury the table; the user's own settings win.
    for name, value in _QUIET_LOADING.items():
        os.environ.setdefault(name, value)
    started = time.perf_counter()
    run: Callable[[argparse.Namespace], dict] = args.run
    result = run(args)
    result['seconds_total'] = round(time.perf_counter() - started, 3)
    result['arguments'] = {k: v for k, v in vars(args).items() if not callable(v)}
    print(table(result))
    left_out = failures(result)
    if left_out:
        print(f'{len(left_out)} images left out, e.g. {left_out[0]}', file=sys.stderr)
    if args.json:
        print(f'wrote {write_json(result, args.json)}', file=sys.stderr)
    if args.plot:
        from loupe.evaluation.plots import write_plots

        for path in write_plots(result, args.plot):
            print(f'wrote {path}', file=sys.stderr)
    return 0
