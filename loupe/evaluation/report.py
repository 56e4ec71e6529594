"""Results as markdown tables (readable in a terminal, pasteable into a README) and JSON."""
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from loupe.evaluation.metrics import ALL, BUCKETS


def percent(value: Optional[float]) -> str:
    return '-' if value is None else f'{100 * value:.1f}'


def number(value: Optional[float], digits: int = 2) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]
    line = lambda cells: '| ' + ' | '.join(  # noqa: E731
        str(c).ljust(w) for c, w in zip(cells, widths)) + ' |'
    return '\n'.join([line(headers), '|' + '|'.join('-' * (w + 2) for w in widths) + '|',
                      *(line(r) for r in rows)])


def _proposals(result: dict) -> str:
    thresholds = [str(t) for t in result['thresholds']]
    headers = ['method', 'chunks/img']
    headers += [f'R@{t} {b}' for t in thresholds for b in (*BUCKETS, ALL)]
    headers += ['best IoU', 's']
    rows = []
    for label, r in result['methods'].items():
        rows.append([label, number(r['chunks_per_image']['mean'], 1),
                     *(percent(r['recall'][t][b]) for t in thresholds for b in (*BUCKETS, ALL)),
                     number(r['mean_best_iou'][ALL]), number(r['seconds'], 1)])
    objects = next(iter(result['methods'].values()), {}).get('objects', {})
    counts = ', '.join(f'{b} {objects.get(b, 0)}' for b in (*BUCKETS, ALL))
    return (markdown(headers, rows) + f'\n\nRecall in % of objects covered at IoU >= t '
            f'({result["dataset"]["images"]} images; objects: {counts}).')


def _seconds(row: dict) -> str:
    return number(sum(row['seconds'].values()), 1)


def _retrieval(result: dict) -> str:
    ks = [str(k) for k in result['ks']]
    headers = ['method', 'rerank', *(f'R@{k}' for k in ks), f'P@{ks[0]}', f'P@{ks[-1]}', 'mAP',
               'highlight hit', 's']
    rows = [[r['method'], 'yes' if r['rerank'] else 'no', *(percent(r['recall'][k]) for k in ks),
             percent(r['precision'][ks[0]]), percent(r['precision'][ks[-1]]), percent(r['map']),
             f'{percent(r["highlight_hit"])} (n={r["highlights"]})', _seconds(r)]
            for r in result['rows'].values()]
    return (markdown(headers, rows) + f'\n\n{result["queries"]} class queries '
            f'("{result["prompt"]}") over {result["dataset"]["images"]} images; values in %.')


def _examples(result: dict) -> str:
    ks = [str(k) for k in result['ks']]
    headers = ['method', 'rerank', *(f'R@{k}' for k in ks), 'highlight IoU', 'highlight hit', 's']
    rows = [[r['method'], 'yes' if r['rerank'] else 'no', *(percent(r['recall'][k]) for k in ks),
             number(r['highlight_iou']), f'{percent(r["highlight_hit"])} (n={r["found"]})',
             _seconds(r)] for r in result['rows'].values()]
    return (markdown(headers, rows) + f'\n\n{result["queries"]} object crops (sides >= '
            f'{result["min_side"]:g} px) over {result["dataset"]["images"]} images; recall in %.')


def _captions(result: dict) -> str:
    ks = [str(k) for k in result['ks']]
    rows = [[name, *(percent(result[key][k]) for k in ks)]
            for name, key in (('text -> image', 'text_to_image'),
                              ('image -> text', 'image_to_text'))]
    return (markdown(['direction', *(f'R@{k}' for k in ks)], rows)
            + f'\n\n{result["images"]} images, {result["captions"]} captions; recall in %.')


TABLES: Dict[str, Callable[[dict], str]] = {
    'proposals': _proposals, 'retrieval': _retrieval, 'query-by-example': _examples,
    'captions': _captions,
}


def table(result: dict) -> str:
    return TABLES[result['evaluation']](result)


def write_json(result: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + '\n')
    return path


def failures(result: dict) -> List[str]:
    """Every image an evaluation had to leave out, once each."""
    found = list(result['dataset'].get('skipped', [])) + list(result.get('failed', []))
    for row in {**result.get('methods', {}), **result.get('rows', {})}.values():
        found += row.get('failed', [])
    return list(dict.fromkeys(found))
