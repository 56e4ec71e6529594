"""``loupe recommend``, ``loupe duplicates``, ``loupe map``: the explore commands.

Building the parser imports nothing heavy; each command starts (or connects to) the query flow
through the CLI's ``connect`` and prints results on stdout.
"""
import json
import os
import sys
from typing import Callable

from loupe.errors import InvalidRequestError

METHODS = ('exact', 'perceptual', 'semantic', 'all')


def _key_values(pairs):
    from loupe.cli import _key_values as parse

    return parse(pairs) or None


def add_parsers(command: Callable, connect: Callable) -> None:
    """``command(name, help, func)`` adds a sub-command (with the global options);
    ``connect(args, flow)`` opens a client (the workspace's service, or a flow started here)."""
    p = command('recommend', 'more like some images, less like others (relevance feedback '
                             'with an SVM)', lambda args: cmd_recommend(args, connect))
    p.add_argument('--like', nargs='+', default=[], metavar='ID_OR_PATH',
                   help='images to find more of: files, recorded paths or ids (required)')
    p.add_argument('--dislike', nargs='+', default=[], metavar='ID_OR_PATH',
                   help='images to find fewer of (default none)')
    p.add_argument('--limit', type=int, default=10, help='results to show (default 10)')
    p.add_argument('--filter', action='append', metavar='KEY=VALUE', help='only images tagged so')
    p.add_argument('--json', action='store_true', help='print results (and ask) as JSON')
    p.add_argument('--save', metavar='DIR', help='write the results and an index.html gallery')
    p.add_argument('--interactive', action='store_true',
                   help='vote y/n/skip on suggestions in the terminal, then print the ranking')

    p = command('duplicates', 'groups of duplicate images: exact copies, edited copies '
                              '(pHash), near-identical scenes (CLIP)',
                lambda args: cmd_duplicates(args, connect))
    p.add_argument('--method', choices=METHODS, default='all', help='default all')
    p.add_argument('--threshold', type=float, help='pHash bits for perceptual (default 10), '
                   'cosine for semantic (default 0.95); with --method all use the two below')
    p.add_argument('--perceptual-threshold', type=int, help='pHash Hamming bits (default 10)')
    p.add_argument('--semantic-threshold', type=float, help='cosine similarity (default 0.95)')
    p.add_argument('--filter', action='append', metavar='KEY=VALUE', help='only images tagged so')
    p.add_argument('--json', action='store_true', help='print the groups as JSON')
    p.add_argument('--save', metavar='DIR', help='write an index.html with a row per group')

    p = command('map', 'a 2-D map of the collection: map.png and map.html',
                lambda args: cmd_map(args, connect))
    p.add_argument('--out', required=True, metavar='DIR', help='folder for map.png, map.html')
    p.add_argument('--query', metavar='TEXT', help='colour the images by similarity to a text')
    p.add_argument('--filter', action='append', metavar='KEY=VALUE', help='only images tagged so')
    p.add_argument('--sample', type=int, default=3000,
                   help='at most this many images, a uniform random sample (default 3000)')
    p.add_argument('--method', choices=('pca', 'umap'), default='pca',
                   help='projection (default pca; umap needs the umap extra)')
    p.add_argument('--seed', type=int, default=0, help='sampling and projection seed (default 0)')


def _result_line(rank: int, r) -> str:
    more = f' (+{len(r.uris) - 1} paths)' if len(r.uris) > 1 else ''
    return f'{rank:3d}  {r.score:+.4f}  {r.uri or r.id}{more}'


def cmd_recommend(args, connect) -> int:
    if not args.like:
        raise InvalidRequestError('give at least one image to --like (an id or a file)')
    if args.limit <= 0:
        raise InvalidRequestError(f'--limit must be > 0, got {args.limit}')
    filter = _key_values(args.filter)
    with connect(args, 'query') as client:
        # an image named by its file (its content), a recorded path, or its id
        like = [client.resolve(item) for item in args.like]
        dislike = [client.resolve(item) for item in args.dislike]
        if args.interactive:
            like, dislike = interactive(client, like, dislike, filter)
        rec = client.recommend(like, dislike, limit=args.limit, filter=filter,
                               with_preview=bool(args.save))
    if args.json:
        print(json.dumps({'model': rec.model, 'results': [r.to_dict() for r in rec.results],
                          'ask': [r.to_dict() for r in rec.ask]}, indent=2))
    else:
        print(f'ranked by {rec.model} ({len(like)} liked, {len(dislike)} disliked)')
        for rank, r in enumerate(rec.results, start=1):
            print(_result_line(rank, r))
        if rec.ask and not args.interactive:
            print('vote on these next (--like/--dislike):')
            for r in rec.ask:
                print(f'       {r.id}  {r.uri or ""}')
    if args.save:
        from loupe.render import save_results

        page = save_results(rec.results, args.save, f'more like {", ".join(like)}')
        print(f'saved {len(rec.results)} results and {page}', file=sys.stderr)
    return 0


def interactive(client, like, dislike, filter, read=input, write=print):
    """Show a suggestion, read y/n/s(kip)/q(uit), retrain, repeat; returns the votes."""
    like, dislike, skipped = list(like), list(dislike), set()
    while True:
        rec = client.recommend(like, dislike, limit=1, ask=8, filter=filter, with_preview=True)
        pending = [r for r in rec.ask if r.id not in skipped]
        if not pending:
            write('no more suggestions')
            return like, dislike
        r = pending[0]
        write(f'\n{r.uri or r.id}  (score {r.score:+.3f}, {rec.model})')
        picture = terminal_picture(r.preview)
        if picture:
            write(picture)
        try:
            answer = read('more like this? [y]es [n]o [s]kip [q]uit: ').strip().lower()[:1]
        except EOFError:
            answer = 'q'
        if answer == 'q':
            return like, dislike
        if answer == 'y':
            like.append(r.id)
        elif answer == 'n':
            dislike.append(r.id)
        else:
            skipped.add(r.id)


def terminal_picture(preview, width: int = 48) -> str:
    """The image in 24-bit colour half blocks, when stdout is a colour terminal; else ''."""
    if not preview or not sys.stdout.isatty() or os.environ.get('TERM', 'dumb') == 'dumb':
        return ''
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(preview)).convert('RGB')
    height = max(2, round(width * image.height / image.width / 2) * 2)
    pixels = image.resize((width, height)).load()
    lines = []
    for y in range(0, height, 2):
        cells = [f'\x1b[38;2;{";".join(map(str, pixels[x, y]))}m'
                 f'\x1b[48;2;{";".join(map(str, pixels[x, y + 1]))}m\u2580' for x in range(width)]
        lines.append(''.join(cells) + '\x1b[0m')
    return '\n'.join(lines)


def cmd_duplicates(args, connect) -> int:
    perceptual, semantic = args.perceptual_threshold, args.semantic_threshold
    if args.threshold is not None:
        if args.method == 'perceptual':
            if args.threshold != int(args.threshold):
                raise InvalidRequestError('--threshold for perceptual is a whole number of bits')
            perceptual = int(args.threshold)
        elif args.method == 'semantic':
            semantic = args.threshold
        else:
            raise InvalidRequestError(f'--threshold needs --method perceptual or semantic; with '
                                      f'{args.method} use --perceptual-threshold and '
                                      f'--semantic-threshold')
    with connect(args, 'query') as client:
        groups = client.duplicates(args.method, perceptual, semantic,
                                   filter=_key_values(args.filter), with_preview=bool(args.save))
    if args.json:
        print(json.dumps([[m.to_dict() for m in group] for group in groups], indent=2))
    else:
        for number, group in enumerate(groups, start=1):
            print(f'group {number}:')
            for i, m in enumerate(group):
                how = 'keep' if i == 0 else f'{m.method} {m.similarity:.3f}'
                print(f'  {how:18s} {m.width}x{m.height}  {m.uris[0] if m.uris else m.id}')
                for path in m.uris[1:]:
                    print(f'  {"":18s} {"":>{len(f"{m.width}x{m.height}")}}  {path}  (same file)')
        if not groups:
            print('no duplicates')
    if args.save:
        from loupe.explore.dup_page import save_groups

        print(f'saved {save_groups(groups, args.save)}', file=sys.stderr)
    return 0


def cmd_map(args, connect) -> int:
    from loupe.explore.map_page import write_map

    with connect(args, 'query') as client:
        result = client.map_points(query=args.query, sample=args.sample,
                                   filter=_key_values(args.filter), projection=args.method,
                                   seed=args.seed)
    notes = [f'{len(result.points)} images, {args.method.upper()}']
    if result.total > len(result.points):
        notes.append(f'a uniform random sample (seed {args.seed}) of {len(result.points)} of '
                     f'{result.total} images')
    title = f'similarity to "{args.query}"' if args.query else 'the collection'
    written = write_map(result.points, args.out, title, notes)
    for note in notes[1:]:
        print(note)
    print(f'wrote {written["png"]} and {written["html"]} ({written["shown"]} images)')
    return 0
