"""``loupe``: index folders of photos, search them by text or example image, serve, delete.

Without ``--server`` (or ``$LOUPE_SERVER``) each command starts the flow it needs in-process
on the data in ``$LOUPE_WORKSPACE``; with it, it talks to a running ``loupe serve``.
"""
import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

from loupe.constants import ENV_SERVER, ENV_WORKSPACE
from loupe.errors import LoupeError


def _key_values(pairs: Optional[List[str]]) -> dict:
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition('=')
        if not sep or not key:
            raise SystemExit(f'expected KEY=VALUE, got {pair!r}')
        out.setdefault(key, []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


# Models load in the executors' processes; their progress bars would bury the results.
_SERVE_CHILD = '_LOUPE_SERVE_CHILD'
_QUIET = {'JINA_LOG_LEVEL': 'WARNING', 'TRANSFORMERS_VERBOSITY': 'error',
          'HF_HUB_DISABLE_PROGRESS_BARS': '1'}


@contextlib.contextmanager
def _stdout_to_stderr():
    """Jina's logs (ours and the executor processes') go to stderr: stdout is for results."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def _loupe(args, flow: str):
    from loupe.client import DEFAULT_PORT, Loupe

    server = args.server or os.environ.get(ENV_SERVER)
    with _stdout_to_stderr():
        if server:
            host, _, port = server.rpartition(':')
            yield Loupe.connect(host or '127.0.0.1', int(port or DEFAULT_PORT), args.protocol)
        else:
            for name, value in _QUIET.items():
                os.environ.setdefault(name, value)
            with Loupe.local(flow) as client:
                yield client


def cmd_index(args) -> int:
    from tqdm import tqdm

    parameters = {'method': args.method} if args.method else {}
    with _loupe(args, 'index') as client, tqdm(unit='img', disable=args.quiet) as bar:
        report = client.index(args.paths, tags=_key_values(args.tag), batch_size=args.batch_size,
                              skip_existing=not args.force, parameters=parameters,
                              progress=bar.update)
    for problem in report.errors:
        print(f'error: {problem.source}: {problem.reason}', file=sys.stderr)
    print(f'indexed {len(report.indexed)} images ({report.chunks} chunks), '
          f'skipped {len(report.skipped)}, failed {len(report.errors)}')
    return 1 if report.errors and not report.indexed else 0


def cmd_search(args) -> int:
    if bool(args.text) == bool(args.image):
        raise SystemExit('give a text query or --image FILE (one of them)')
    parameters = {'with_preview': True} if args.save else {}
    with _loupe(args, 'query') as client:
        results = client.search(text=args.text, image=args.image, limit=args.limit,
                                rerank=args.rerank or None, filter=_key_values(args.filter) or None,
                                **parameters)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for rank, r in enumerate(results, start=1):
            box = '[' + ', '.join(f'{v:.0f}' for v in r.highlight) + ']' if r.highlight else '-'
            print(f'{rank:3d}  {r.score:.4f}  {box:24s} {r.highlight_source or "":8s} '
                  f'{r.uri or r.id}')
        if not results:
            print('no results')
    if args.save:
        from loupe.render import save_results

        page = save_results(results, args.save, args.text or f'image: {args.image}')
        print(f'saved {len(results)} results and {page}', file=sys.stderr)
    return 0


def cmd_delete(args) -> int:
    from loupe.sources import ID_LENGTH, to_doc

    ids = []
    for item in args.items:
        ids.append(to_doc(item).id if Path(item).is_file() else item[:ID_LENGTH])
    with _loupe(args, 'index') as client:
        removed = client.delete(ids)
    print(f'deleted {len(removed)} of {len(ids)}')
    return 0


def cmd_serve(args) -> int:
    """Run the service in a child process group, so that a failed start leaves nothing behind.

    Jina hangs for ever when an executor fails to start under two protocols; with
    JINA_EARLY_STOP it exits at once instead, but without ending its gateway and executor
    processes. The child runs in a session of its own; when it ends, this process ends the
    whole group.
    """
    if os.environ.get(_SERVE_CHILD):
        return _serve(args)
    env = dict(os.environ, **{_SERVE_CHILD: '1', 'JINA_EARLY_STOP': '1'})
    child = subprocess.Popen([sys.executable, '-m', 'loupe.cli', *args.argv], env=env,
                             start_new_session=True)

    def forward(signum, frame):
        child.send_signal(signal.SIGINT)  # the flow closes its executors on SIGINT

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    code = child.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)  # anything the child left running
    if code:
        print('loupe: the service could not start or stopped with an error (see above)',
              file=sys.stderr)
    return code


def _serve(args) -> int:
    from loupe.flows import load_flow

    ports = [args.port] if args.no_http else [args.port, args.http_port]
    protocols = ['grpc'] if args.no_http else ['grpc', 'http']
    flow = load_flow(args.flow, host=args.host, port=ports if len(ports) > 1 else ports[0],
                     protocol=protocols if len(protocols) > 1 else protocols[0])
    with flow:
        print(f'loupe serving gRPC on {args.host}:{args.port}'
              + ('' if args.no_http else f', HTTP on {args.host}:{args.http_port}'), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            flow.block()
    return 0


def cmd_tiny_models(args) -> int:
    """Build tiny random models and print the settings that select them (for ``eval "$(...)"``)."""
    from loupe.tiny_models import build_all

    for env, folder in build_all(args.directory).items():
        print(f'export {env}={shlex.quote(folder)}')
    return 0


def build_parser() -> argparse.ArgumentParser:
    from loupe.client import DEFAULT_PORT

    parser = argparse.ArgumentParser(prog='loupe', description=__doc__.splitlines()[0])
    parser.add_argument('--workspace', help=f'data folder (default ${ENV_WORKSPACE} or ./workspace)')
    parser.add_argument('--server', help=f'HOST:PORT of a running loupe serve (or ${ENV_SERVER})')
    parser.add_argument('--protocol', default='grpc', choices=['grpc', 'http'])
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('index', help='index image files, folders (recursively) or URLs')
    p.add_argument('paths', nargs='+')
    p.add_argument('--tag', action='append', metavar='KEY=VALUE', help='tag every image')
    p.add_argument('--method', help='partition method: none, grid, detector, dino')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--force', action='store_true', help='re-index images already indexed')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=cmd_index)

    p = sub.add_parser('search', help='search by text, or by an example image')
    p.add_argument('text', nargs='?')
    p.add_argument('--image', help='query image file or URL')
    p.add_argument('--limit', type=int, default=10)
    p.add_argument('--rerank', action='store_true', help='rerank the top results with OWL-ViT')
    p.add_argument('--filter', action='append', metavar='KEY=VALUE', help='only images tagged so')
    p.add_argument('--json', action='store_true', help='print results as JSON')
    p.add_argument('--save', metavar='DIR', help='write results with boxes and an index.html')
    p.set_defaults(func=cmd_search)

    p = sub.add_parser('delete', help='remove images by file or id')
    p.add_argument('items', nargs='+')
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser('serve', help='serve indexing and search over gRPC and HTTP')
    p.add_argument('--flow', default='serve')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=DEFAULT_PORT)
    p.add_argument('--http-port', type=int, default=DEFAULT_PORT + 1)
    p.add_argument('--no-http', action='store_true', help='gRPC only')
    p.set_defaults(func=cmd_serve)

    from loupe.evaluation.cli import add_parser as add_eval_parser

    add_eval_parser(sub)

    p = sub.add_parser('tiny-models', help='build tiny random models (no hub access needed) and '
                                            'print the environment settings that select them')
    p.add_argument('directory')
    p.set_defaults(func=cmd_tiny_models)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.workspace:
        os.environ[ENV_WORKSPACE] = str(Path(args.workspace).resolve())
    from loupe.flows import jina_defaults

    jina_defaults()
    from jina.excepts import RuntimeFailToStart

    try:
        return args.func(args)
    except LoupeError as e:
        print(f'loupe: {e}', file=sys.stderr)
        return 2
    except RuntimeFailToStart:
        print('loupe: the flow could not start (the executor errors are above)', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
