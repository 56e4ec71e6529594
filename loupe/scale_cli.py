"""The CLI of scaling out: ``serve --shards/--replicas/--gpu``, ``reshard``, ``export``."""
import sys
from pathlib import Path


def add_serve_options(parser) -> None:
    parser.add_argument('--shards', type=int, help='shards of the chunk index and parent storage '
                        '(default: as the workspace was made, 1 for a new one)')
    parser.add_argument('--replicas', type=int, help='replicas of segmenter, encoder, reranker')
    parser.add_argument('--gpu', action='store_true',
                        help='one GPU per replica, round robin (CUDA_VISIBLE_DEVICES=RR)')


def serve_options(args) -> dict:
    return {'shards': args.shards, 'replicas': args.replicas, 'gpu': args.gpu}


def serve_arguments(args) -> list:
    """The options above again, for a service started in the background."""
    out = [f'--{name}={value}' for name in ('shards', 'replicas')
           if (value := getattr(args, name)) is not None]
    return out + (['--gpu'] if args.gpu else [])


def check_shards(args, workspace: Path) -> None:
    """Refuse ``--shards`` other than the workspace's count before anything starts."""
    if args.shards is not None:
        from loupe.scaling import check_workspace

        check_workspace(args.shards, workspace)


def cmd_reshard(args) -> int:
    from loupe.reshard import reshard
    from loupe.paths import workspace_root
    from loupe.workspace import held

    root = workspace_root()
    with held(root, 'loupe reshard'):  # offline: no service may hold the workspace
        copied = reshard(root, args.to, log=lambda m: print(m, file=sys.stderr))
    print(f'{root}: {args.to} shards' + ('' if copied else ' (already so: nothing to do)'))
    return 0


def cmd_export(args) -> int:
    from loupe.export import export_compose, export_kubernetes

    options = dict(shards=args.shards, replicas=args.replicas, gpu=args.gpu,
                   image=args.image, flow=args.flow)
    if args.target == 'kubernetes':
        written = export_kubernetes(Path(args.path), namespace=args.namespace, **options)
    else:
        written = export_compose(Path(args.path), **options)
    for path in written:
        print(path)
    return 0


def add_parsers(command) -> None:
    """``command(name, help, func)`` makes a sub-command's parser (loupe.cli)."""
    from loupe.export import DEFAULT_IMAGE

    p = command('reshard', 'redistribute the workspace over another number of shards, '
                           'offline, from the stored records (nothing re-encoded)', cmd_reshard)
    p.add_argument('--to', type=int, required=True, metavar='M', help='shards after')

    p = command('export', 'Kubernetes manifests or a Docker Compose file of the service, '
                          "written by Jina's exporters from the flow", cmd_export)
    p.add_argument('target', choices=['kubernetes', 'compose'])
    p.add_argument('path', help='kubernetes: a folder; compose: a file')
    p.add_argument('--shards', type=int, default=1, help='shards of index and storage')
    p.add_argument('--replicas', type=int, default=1,
                   help='replicas of segmenter, encoder, reranker')
    p.add_argument('--gpu', action='store_true',
                   help='one GPU for each encoder and reranker replica')
    p.add_argument('--image', default=DEFAULT_IMAGE, help='the loupe image (see Dockerfile)')
    p.add_argument('--namespace', default='loupe', help='Kubernetes namespace')
    p.add_argument('--flow', default='serve', help='flow name or YAML file')
