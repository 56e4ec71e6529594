"""``loupe``: index folders of photos, search them by text or example image, serve, delete.

Each command works on one workspace (``--workspace``, ``$LOUPE_WORKSPACE``, else the per-user
data folder). When a service owns it (``loupe serve``), the command is sent to that service;
otherwise the command starts the flow it needs in-process. ``--server`` names a service
elsewhere.
"""
import argparse
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import List, Optional

from loupe import lifeline
from loupe.constants import ENV_SERVER, ENV_WORKSPACE
from loupe.config import PARTITION_METHODS
from loupe.errors import InvalidRequestError, LoupeError
from loupe.fetch import ENV_ALLOW_FOLDERS, ENV_ALLOW_URLS
from loupe.guard import ENV_API_KEY

_SERVE_CHILD = '_LOUPE_SERVE_CHILD'  # set in the service's process: the parent's pid
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_CLOSE_SECONDS = 30  # for the flow to close in order once told to stop
SERVE_COMMAND = 'loupe serve'  # how a service names itself in the workspace's owner record
METHODS = PARTITION_METHODS


def _key_values(pairs: Optional[List[str]]) -> dict:
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition('=')
        if not sep or not key:
            raise InvalidRequestError(f'expected KEY=VALUE, got {pair!r}')
        out.setdefault(key, []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def _workspace() -> Path:
    from loupe.paths import workspace_root

    return workspace_root()


def _server(args) -> Optional[str]:
    """``host:port`` to send commands to: the flag, the environment, else the workspace's service."""
    from loupe import workspace as ws

    explicit = getattr(args, 'server', None) or os.environ.get(ENV_SERVER)
    if explicit:
        return explicit
    workspace = _workspace()
    found = ws.owner(workspace)
    if found is None:
        return None
    address = ws.service_address(workspace)
    if address is None and found.command == SERVE_COMMAND:  # starting: wait until it listens
        address = ws.wait_for_service(workspace, timeout=600)
    if address is None:
        raise ws.WorkspaceBusyError(f'workspace {workspace} is in use by {found.describe()}')
    ws.touch_used(workspace)
    return address


@contextlib.contextmanager
def _loupe(args, flow: str, method: Optional[str] = None):
    from loupe import quiet
    from loupe.client import Loupe

    server = _server(args)
    if server:
        client = Loupe.connect(server, protocol=args.protocol,
                               api_key=getattr(args, 'api_key', None))
        client.routed = server
        yield client
        return
    from loupe.preflight import check_flow

    check_flow(flow, method)
    log = None if args.verbose else _workspace() / quiet.LOG_NAME
    try:
        with quiet.logs_to_file(log), Loupe.local(flow) as client:
            client.routed = None
            yield client
    except Exception as e:
        from jina.excepts import RuntimeFailToStart

        if isinstance(e, RuntimeFailToStart) and log is not None:
            details = '\n  '.join(quiet.errors_in(log))
            raise LoupeError(f'the flow could not start (full log: {log})'
                             + (f':\n  {details}' if details else '')) from None
        raise


def _progress(args, total: Optional[int]):
    from tqdm import tqdm

    return tqdm(total=total, unit='img', disable=args.quiet or None, dynamic_ncols=True,
                bar_format='{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, '
                           '{rate_fmt}]' if total else None)


def _print_problems(title: str, problems, stream=sys.stderr) -> None:
    for problem in problems:
        print(f'{title}: {problem.source}: {problem.reason}', file=stream)


def cmd_index(args) -> int:
    if args.sync:
        return cmd_sync(args)
    from loupe.sources import Problem, expand

    problems: List[Problem] = []
    sources = list(expand(args.paths, problems))  # counted first: the bar shows a total
    parameters = {'method': args.method} if args.method else {}
    with _loupe(args, 'index', args.method) as client, _progress(args, len(sources)) as bar:
        report = client.index(sources, tags=_key_values(args.tag), batch_size=args.batch_size,
                              skip_existing=not args.force, parameters=parameters,
                              progress=bar.update)
    report.errors[:0] = problems
    _print_problems('error', report.errors)
    if args.verbose:
        _print_problems('skipped', report.skipped)
    tagged = f', tags merged into {report.tagged}' if report.tagged else ''
    print(f'indexed {len(report.indexed)} images ({report.chunks} chunks), '
          f'skipped {len(report.skipped)}{tagged}, failed {len(report.errors)}')
    return 1 if report.errors else 0


def cmd_sync(args) -> int:
    from loupe.sync import sync

    folders = args.paths
    missing = [f for f in folders if not Path(f).expanduser().is_dir()]
    if missing:
        raise InvalidRequestError(f'no such folder: {", ".join(missing)}')
    parameters = {'method': args.method} if args.method else {}
    with _loupe(args, 'index', args.method) as client:
        report = sync(client, folders, batch_size=args.batch_size, parameters=parameters,
                      tags=_key_values(getattr(args, 'tag', None)),
                      progress_factory=lambda total: _progress(args, total))
    _print_problems('error', report.errors)
    if args.verbose:
        for kind in ('added', 'changed', 'moved', 'removed'):
            for item in getattr(report, kind):
                print(f'{kind}: {item}', file=sys.stderr)
    print(report.summary())
    return 1 if report.errors else 0


def _query_terms(args):
    from loupe.query import parse_terms

    terms = parse_terms(args.query or [])
    for image in args.image or ():
        terms.append((args.image_weight, 'image', image))
    return terms


def _local_http(args):
    """(host, HTTP port, gRPC address) of the workspace's own service, when it has HTTP."""
    from loupe import workspace as ws

    if getattr(args, 'server', None) or os.environ.get(ENV_SERVER):
        return None
    found = ws.owner(_workspace())
    if found is None or not found.address or not found.http_port:
        return None
    ws.touch_used(_workspace())
    return found.host, found.http_port, found.address


def _fast_search(args, terms):
    """Results through the service's HTTP port without importing jina or torch, else None."""
    from loupe import http_search
    from loupe.results import page

    if args.save or not http_search.applies(terms):
        return None
    target = _local_http(args)
    if target is None:
        return None
    host, port, address = target
    options = {'limit': args.limit + args.offset}
    if args.rerank:
        options['rerank'] = True
    if args.filter:
        options['filter'] = _key_values(args.filter)
    try:
        found = http_search.search(host, port, terms, options)
    except http_search.Unavailable:
        return None
    return page(found, args.offset, args.min_score), address


def cmd_search(args) -> int:
    from loupe.query import check_terms

    terms = _query_terms(args)
    check_terms(terms)
    fast = _fast_search(args, terms)
    if fast is not None:
        results, routed = fast
    else:
        parameters = {'with_preview': True} if args.save else {}
        with _loupe(args, 'query') as client:
            results = client.search(terms=terms, limit=args.limit, offset=args.offset,
                                    min_score=args.min_score, rerank=args.rerank or None,
                                    filter=_key_values(args.filter) or None, **parameters)
            routed = client.routed
    if getattr(results, 'warning', None):
        print(f'warning: {results.warning}', file=sys.stderr)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    elif args.paths:
        for r in results:
            print(r.uri or r.id)
    else:
        for rank, r in enumerate(results, start=args.offset + 1):
            box = '[' + ', '.join(f'{v:.0f}' for v in r.highlight) + ']' if r.highlight else '-'
            print(f'{rank:3d}  {r.score:.4f}  {box:24s} {r.highlight_source or "":8s} '
                  f'{r.uri or r.id}')
    if not results and not args.json:
        print(_no_results(routed), file=sys.stderr)
    if args.save:
        from loupe.render import save_results

        title = ' '.join(args.query or []) or f'image: {args.image}'
        page = save_results(results, args.save, title)
        print(f'saved {len(results)} results and {page}', file=sys.stderr)
    return 0


def _no_results(routed: Optional[str]) -> str:
    from loupe.status import image_count

    workspace = _workspace()
    where = f' (service at {routed})' if routed else ''
    count = image_count(workspace) if routed is None or ws_is_local(routed) else None
    held = f'{count} images' if count is not None else 'its images'
    return f'no results in workspace {workspace}{where}: it holds {held}'


def ws_is_local(routed: str) -> bool:
    from loupe import workspace as ws

    found = ws.owner(_workspace())
    return found is not None and found.address == routed


def cmd_delete(args) -> int:
    with _loupe(args, 'index') as client:
        report = client.delete_items(args.items)
    for item, reason in report.not_deleted:
        print(f'not deleted: {item}: {reason}', file=sys.stderr)
    print(f'deleted {len(report.deleted)} of {len(args.items)}')
    return 1 if report.not_deleted else 0


def cmd_tag(args) -> int:
    tags = _key_values(args.tags)
    if not tags and not args.untag:
        raise InvalidRequestError('give KEY=VALUE tags to set or --untag KEY')
    with _loupe(args, 'index') as client:
        changed = client.tag([args.item], tags, untag=args.untag or ())
    if not changed:
        print(f'not tagged: {args.item}: not indexed', file=sys.stderr)
        return 1
    print(f'tagged {changed[0]}')
    return 0


def cmd_status(args) -> int:
    from loupe.status import format_status, workspace_status

    status = workspace_status(_workspace())
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def cmd_stop(args) -> int:
    from loupe.service import stop

    stopped = stop(_workspace())
    if stopped is None:
        print(f'no service owns workspace {_workspace()}', file=sys.stderr)
        return 1
    print(f'stopped the service at {stopped.address} (pid {stopped.pid})', file=sys.stderr)
    return 0


def cmd_serve(args) -> int:
    """Run the service in a child process group, so that a failed start leaves nothing behind.

    Jina hangs for ever when an executor fails to start under two protocols; with
    JINA_EARLY_STOP it exits at once instead, but without ending its gateway and executor
    processes. The child runs in a session of its own with every process Jina starts; when it
    ends, this process ends the whole group. If this process ends first, whatever ended it, the
    child hears of it (loupe.lifeline) and takes the group down.
    """
    if args.http_port is None:
        args.http_port = default_http_port(args.port)
    if os.environ.get(_SERVE_CHILD):
        return _serve(args)
    from loupe.preflight import check_flow
    from loupe.scale_cli import check_shards

    check_flow(args.flow)
    check_shards(args, _workspace())
    busy = _busy_ports(args.host, [args.port] if args.no_http else [args.port, args.http_port])
    if busy:
        print(f'loupe: {args.host}:{busy} is already in use (is another loupe serve running?); '
              'choose other ports with --port / --http-port', file=sys.stderr)
        return 2
    if args.background:
        return _serve_background(args)
    argv = [*args.argv]
    env = dict(os.environ, **{_SERVE_CHILD: str(os.getpid()), 'JINA_EARLY_STOP': '1'})
    child = subprocess.Popen([sys.executable, '-m', 'loupe.cli', *argv], env=env,
                             start_new_session=True)
    stopping = threading.Event()

    def forward(signum, frame):
        child.send_signal(signal.SIGINT)  # the child closes the flow in order
        stopping.set()

    for signum in _STOP_SIGNALS:
        signal.signal(signum, forward)
    lifeline.kill_group_after(stopping, _CLOSE_SECONDS, group=child.pid)
    code = child.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)  # anything the child left running
    if code and not stopping.is_set():
        print('loupe: the service could not start or stopped with an error (see above)',
              file=sys.stderr)
    return 0 if stopping.is_set() else code


def _busy_ports(host: str, ports: List[int]) -> Optional[int]:
    """The first of ``ports`` that a server already listens on at ``host``."""
    for port in ports:
        with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
            try:
                probe.bind((host, port))
            except OSError:
                return port
    return None


def _serve_background(args) -> int:
    from loupe.scale_cli import serve_arguments
    from loupe.service import start_background

    serve_args = ['--flow', args.flow, '--host', args.host, '--port', str(args.port),
                  '--http-port', str(args.http_port), '--idle-timeout', str(args.idle_timeout)]
    if args.no_http:
        serve_args.append('--no-http')
    serve_args += serve_arguments(args)
    if args.verbose:
        serve_args.append('-v')
    owner = start_background(_workspace(), serve_args)
    idle = (f'; it stops after {args.idle_timeout:g} min without a command'
            if args.idle_timeout > 0 else '')
    page = f', web page on http://{owner.host}:{owner.http_port}/' if owner.http_port else ''
    print(f'loupe serving {_workspace()} on {owner.address}{page} (pid {owner.pid}) in the '
          f'background{idle}; `loupe stop` ends it', file=sys.stderr)
    return 0


def _serve(args) -> int:
    from loupe import quiet
    from loupe.flows import load_flow
    from loupe.scale_cli import serve_options
    from loupe.service import watch_idle
    from loupe.workspace import held

    stop = threading.Event()
    lifeline.on_signals(_STOP_SIGNALS, stop)
    lifeline.die_with_parent(int(os.environ[_SERVE_CHILD]))  # SIGTERM: stop, as above
    lifeline.kill_group_after(stop, _CLOSE_SECONDS)  # a close that hangs ends the group
    ports = [args.port] if args.no_http else [args.port, args.http_port]
    protocols = ['grpc'] if args.no_http else ['grpc', 'http']
    workspace = _workspace()
    with quiet.stdout_to_stderr(), held(workspace, SERVE_COMMAND) as lock:
        flow = load_flow(args.flow, host=args.host, port=ports if len(ports) > 1 else ports[0],
                         protocol=protocols if len(protocols) > 1 else protocols[0],
                         **serve_options(args))
        with flow:
            lifeline.on_signals(_STOP_SIGNALS, stop)  # again: starting the flow may set its own
            lock.serving(args.host, args.port, None if args.no_http else args.http_port)
            print(f'loupe serving {workspace}: gRPC on {args.host}:{args.port}'
                  + ('' if args.no_http else f', HTTP and the web page on '
                                             f'http://{args.host}:{args.http_port}/'),
                  file=sys.stderr, flush=True)
            watch_idle(workspace, args.idle_timeout)
            stop.wait()
    return 0


def cmd_tiny_models(args) -> int:
    """Build tiny random models and print the settings that select them (for ``eval "$(...)"``)."""
    from loupe.tiny_models import build_all

    for env, folder in build_all(args.directory).items():
        print(f'export {env}={shlex.quote(folder)}')
    return 0


def cmd_models(args) -> int:
    """The supported encoder families and recommended checkpoints (loupe.catalogue)."""
    import json

    from loupe import catalogue
    from loupe.families import FAMILIES

    if args.json:
        print(json.dumps({'families': {n: f.title for n, f in FAMILIES.items()},
                          'checkpoints': catalogue.rows()}, indent=2))
        return 0
    print('Encoder families (any checkpoint of these loads by hub id or folder):')
    for name, family in FAMILIES.items():
        print(f'  {name:13} {family.title}')
    print()
    print(catalogue.markdown())
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a whole number, got {text!r}') from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {value}')
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a whole number, got {text!r}') from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {value}')
    return value


def default_http_port(grpc_port: int) -> int:
    """HTTP beside gRPC: the next port (the one before, at the top of the range)."""
    return grpc_port + 1 if grpc_port < 65535 else grpc_port - 1


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f'must be a port number (1-65535), got {value}')
    return value


class _Parser(argparse.ArgumentParser):
    """A wrong argument is one line, before anything starts."""

    def error(self, message):
        self.exit(2, f'{self.prog}: {message} (see {self.prog} --help)\n')


class _Help(argparse.HelpFormatter):
    """Every option's help ends with its default (flags are off unless given)."""

    def _get_help_string(self, action):
        text = action.help or ''
        if '(default' in text or not action.option_strings or action.nargs == 0 or \
                action.required:
            return text  # flags (store_true and the like) are off unless given
        if action.default is None or action.default is argparse.SUPPRESS:
            # "$LOUPE_X or Y" already says what applies when the option is not given
            return text if '$' in text else f'{text} (default: none)'
        return f'{text} (default: %(default)s)'


def _global_options(parser: argparse.ArgumentParser, sub: bool) -> None:
    """The same options before or after the subcommand (after it, they win)."""
    from loupe.paths import DEFAULT_WORKSPACE_HELP

    default = (lambda value: argparse.SUPPRESS) if sub else (lambda value: value)
    parser.add_argument('--workspace', default=default(None), metavar='DIR',
                        help=f'data folder (default: ${ENV_WORKSPACE}, else '
                             f'{DEFAULT_WORKSPACE_HELP})')
    parser.add_argument('--server', default=default(None), metavar='HOST:PORT',
                        help=f'a running loupe serve elsewhere (default: ${ENV_SERVER}, else the '
                             "workspace's own service when one runs, else in-process)")
    parser.add_argument('--protocol', default=default('grpc'), choices=['grpc', 'http'],
                        help='how to talk to --server (default: grpc)')
    parser.add_argument('-v', '--verbose', action='store_true', default=default(False),
                        help='show the logs of Jina and the models, and skipped files')
    parser.add_argument('--api-key', default=default(None), metavar='KEY',
                        help=f'the service\'s API key (default: ${ENV_API_KEY}): serve requires '
                             'it of every caller, the other commands send it')


def build_parser() -> argparse.ArgumentParser:
    from loupe.constants import DEFAULT_PORT
    from loupe.scale_cli import add_parsers as add_scale_parsers, add_serve_options
    from loupe.service import DEFAULT_IDLE_MINUTES

    parser = _Parser(prog='loupe', description=__doc__.splitlines()[0], formatter_class=_Help,
                     epilog='Settings, highest precedence first: command-line flag or request '
                            'parameter > environment (LOUPE_*) > flow YAML > default '
                            '(loupe/config.py).')
    _global_options(parser, sub=False)
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND',
                                parser_class=_Parser)

    def command(name, help, func):
        p = sub.add_parser(name, help=help, description=help, formatter_class=_Help)
        _global_options(p, sub=True)
        p.set_defaults(func=func)
        return p

    def indexing_options(p):
        p.add_argument('--method', choices=METHODS,
                       help='partition method for this run (default: the flow\'s, grid)')
        p.add_argument('--batch-size', type=_positive, default=8, help='images per request')
        p.add_argument('--quiet', action='store_true', help='no progress bar')

    p = command('index', 'index image files, folders (recursively) or URLs', cmd_index)
    p.add_argument('paths', nargs='+', metavar='PATH')
    p.add_argument('--tag', action='append', metavar='KEY=VALUE',
                   help='tag every image (merged into images already indexed)')
    p.add_argument('--force', action='store_true', help='re-index images already indexed')
    p.add_argument('--sync', action='store_true',
                   help='make the index follow the folders: as `loupe sync`')
    indexing_options(p)

    p = command('sync', 'make the index follow folders: add new files, re-index changed '
                        'ones, remove gone ones, keep moved ones', cmd_sync)
    p.add_argument('paths', nargs='+', metavar='FOLDER')
    p.add_argument('--tag', action='append', metavar='KEY=VALUE', help='tag new images')
    p.set_defaults(force=False)
    indexing_options(p)

    p = command('search', 'search by text, by example images, or by a sum of them', cmd_search)
    p.add_argument('query', nargs='*', metavar='TERM',
                   help='text, or query arithmetic: "a dog" + "on the beach" - night; a term '
                        'may carry a weight (0.5*beach) and may be an image file')
    p.add_argument('--image', action='append', metavar='FILE',
                   help='an example image (file or URL); with text, both count')
    p.add_argument('--image-weight', type=float, default=1.0, help='weight of --image terms')
    p.add_argument('--limit', type=_positive, default=10, help='results to show')
    p.add_argument('--offset', type=_non_negative, default=0,
                   help='skip this many results first (paging)')
    p.add_argument('--min-score', type=float, help='only results scoring at least this')
    p.add_argument('--rerank', action='store_true', help='rerank the top results with OWL-ViT')
    p.add_argument('--filter', action='append', metavar='KEY=VALUE', help='only images tagged so')
    out = p.add_mutually_exclusive_group()
    out.add_argument('--json', action='store_true', help='print results as JSON')
    out.add_argument('--paths', action='store_true', help='print one path per line')
    p.add_argument('--save', metavar='DIR', help='write results with boxes and an index.html')

    p = command('delete', 'remove images by file, recorded path or id', cmd_delete)
    p.add_argument('items', nargs='+', metavar='PATH_OR_ID')

    p = command('tag', "change an indexed image's tags without re-encoding it", cmd_tag)
    p.add_argument('item', metavar='ID_OR_PATH')
    p.add_argument('tags', nargs='*', metavar='KEY=VALUE')
    p.add_argument('--untag', action='append', metavar='KEY', help='remove this tag')

    p = command('status', 'what the workspace holds and whether a service runs', cmd_status)
    p.add_argument('--json', action='store_true', help='print the status as JSON')

    p = command('serve', 'serve indexing and search over gRPC and HTTP', cmd_serve)
    p.add_argument('--flow', default='serve', help='flow name or YAML file')
    p.add_argument('--host', default='127.0.0.1', help='address to listen on')
    p.add_argument('--port', type=_port, default=DEFAULT_PORT, help='gRPC port')
    p.add_argument('--http-port', type=_port, help='HTTP port (default: --port + 1)')
    p.add_argument('--no-http', action='store_true', help='gRPC only')
    p.add_argument('--allow-folder', action='append', metavar='DIR',
                   help=f'let clients name files in DIR by uri (default: ${ENV_ALLOW_FOLDERS}, '
                        'else none: clients send bytes)')
    p.add_argument('--allow-url', action='append', metavar='PATTERN',
                   help='let clients name URLs matching http(s)://HOST by uri (HOST may be '
                        f'*.domain, or * for public hosts) (default: ${ENV_ALLOW_URLS}, else none)')
    p.add_argument('--background', action='store_true',
                   help='start it detached (log in <workspace>/serve.log) and return')
    p.add_argument('--idle-timeout', type=float, metavar='MINUTES', default=None,
                   help='stop after this long without a loupe command; 0: never (default: '
                        f'{DEFAULT_IDLE_MINUTES:g} with --background, else 0)')
    add_serve_options(p)

    command('stop', "stop the workspace's service", cmd_stop)
    add_scale_parsers(command)

    from loupe.explore.cli import add_parsers as add_explore_parsers

    add_explore_parsers(command, _loupe)

    from loupe.evaluation.cli import add_parser as add_eval_parser

    add_eval_parser(sub, formatter_class=_Help)

    p = command('tiny-models', 'build tiny random models (no hub access needed) and print the '
                               'environment settings that select them', cmd_tiny_models)
    p.add_argument('directory')

    p = command('models', 'encoder families and recommended checkpoints, with sizes, licences, '
                          'published retrieval and CPU cost', cmd_models)
    p.add_argument('--json', action='store_true', help='print as JSON')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    for name, value in (('server', None), ('protocol', 'grpc'), ('verbose', False),
                        ('api_key', None)):
        if not hasattr(args, name):  # eval's parser has no global options of its own
            setattr(args, name, value)
    if getattr(args, 'idle_timeout', 0) is None:
        from loupe.service import DEFAULT_IDLE_MINUTES

        args.idle_timeout = DEFAULT_IDLE_MINUTES if args.background else 0
    if getattr(args, 'workspace', None):
        os.environ[ENV_WORKSPACE] = str(Path(args.workspace).expanduser().resolve())
    if args.api_key:
        os.environ[ENV_API_KEY] = args.api_key  # the gateway (serve) reads it there
    for name, variable, sep in (('allow_folder', ENV_ALLOW_FOLDERS, os.pathsep),
                                ('allow_url', ENV_ALLOW_URLS, ',')):
        if getattr(args, name, None):
            os.environ[variable] = sep.join(getattr(args, name))
    from loupe import quiet
    from loupe.flows import jina_defaults

    quiet.configure(args.verbose)
    jina_defaults()
    # Jina's hub client imports pkg_resources, whose deprecation warning is noise to a user.
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    try:
        return args.func(args)
    except LoupeError as e:
        print(f'loupe: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into head: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == '__main__':
    sys.exit(main())
