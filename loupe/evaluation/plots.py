"""PNG charts of a result: recall per method, and proposal recall per object size.

matplotlib is an optional extra (``pip install loupe[eval]``), imported only here, with the
Agg backend (no display needed).
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from loupe.errors import LoupeError
from loupe.evaluation.metrics import ALL, BUCKETS


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise LoupeError('--plot needs matplotlib: pip install "loupe[eval]"') from e
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def grouped_bars(path: Path, title: str, groups: Sequence[str],
                 series: Dict[str, Sequence[Optional[float]]], ylabel: str) -> Path:
    """One group of bars per entry of ``groups``, one bar per series; None draws no bar."""
    plt = _pyplot()
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 + 0.4 * len(groups) * len(series)), 4))
    for n, (name, values) in enumerate(series.items()):
        xs = [g + (n - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [0.0 if v is None else 100 * v for v in values]
        bars = ax.bar(xs, heights, width, label=name)
        ax.bar_label(bars, labels=['' if v is None else f'{100 * v:.0f}' for v in values],
                     fontsize=7)
    tilt = len(groups) > 4  # long method specs side by side would overlap
    ax.set_xticks(range(len(groups)), groups, rotation=20 if tilt else 0,
                  ha='right' if tilt else 'center')
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(result: dict, directory) -> List[Path]:
    out = Path(directory)
    kind = result['evaluation']
    if kind == 'proposals':
        methods = result['methods']
        thresholds = [str(t) for t in result['thresholds']]
        return [
            grouped_bars(out / 'proposals_recall.png', 'Proposal recall per method',
                         list(methods), {f'IoU >= {t}': [m['recall'][t][ALL]
                                                         for m in methods.values()]
                                         for t in thresholds}, 'objects covered (%)'),
            grouped_bars(out / 'proposals_by_size.png',
                         f'Proposal recall by object size (IoU >= {thresholds[0]})',
                         [*BUCKETS, ALL], {label: [m['recall'][thresholds[0]][b]
                                                   for b in (*BUCKETS, ALL)]
                                           for label, m in methods.items()},
                         'objects covered (%)'),
        ]
    ks = [str(k) for k in result['ks']]
    if kind == 'captions':
        return [grouped_bars(out / 'captions_recall.png', 'Caption retrieval',
                             ['text -> image', 'image -> text'],
                             {f'R@{k}': [result['text_to_image'][k], result['image_to_text'][k]]
                              for k in ks}, 'recall (%)')]
    rows = result['rows']
    series = {f'R@{k}': [r['recall'][k] for r in rows.values()] for k in ks}
    if kind == 'retrieval':
        series['mAP'] = [r['map'] for r in rows.values()]
    series['highlight hit'] = [r['highlight_hit'] for r in rows.values()]
    name = kind.replace('-', '_')
    return [grouped_bars(out / f'{name}_recall.png', f'{kind}: recall per method', list(rows),
                         series, '%')]
