"""Recommended checkpoints per encoder family, for ``loupe models`` and the README.

Sizes (embedding, input, parameters) are those of each checkpoint's architecture, counted by
``bench/families.py`` on a random-weight model of the same configuration, as is the CPU cost
per image (this project's 2-core machine; see the README for the run and its load). Retrieval
figures are copied from the source named beside each one; a figure without a source is left
empty, never estimated.
"""
from dataclasses import asdict, dataclass, field
from typing import List, Optional

from loupe.families import FAMILIES

CLIP_BENCHMARK = ('LAION-AI/CLIP_benchmark, benchmark/benchmark.csv (Flickr30k 1k test, '
                  'R@5)')
SIGLIP2_README = ('google-research/big_vision, big_vision/configs/proj/image_text/'
                  'README_siglip2.md (COCO, R@1; NaFlex at 256 patches)')
CN_CLIP_RESULTS = 'OFA-Sys/Chinese-CLIP, Results.md (Flickr30K-CN zero-shot, R@1)'
ALTCLIP_README = 'FlagAI-Open/FlagAI, examples/AltCLIP/README.md (Flickr30k EN and CN, R@1)'


@dataclass(frozen=True)
class Retrieval:
    dataset: str
    metric: str
    text_to_image: float
    image_to_text: float
    source: str


@dataclass(frozen=True)
class Checkpoint:
    hub_id: str
    family: str
    embedding: int
    input: str  # pixels, or the NaFlex patch budget
    licence: Optional[str]
    languages: str
    parameters_m: Optional[int]  # millions, counted on the architecture
    cpu_ms_per_image: Optional[int]  # image tower, fp32, batch 4, bench/families.py (heavy load)
    retrieval: List[Retrieval] = field(default_factory=list)
    note: str = ''


CHECKPOINTS = [
    Checkpoint('openai/clip-vit-base-patch32', 'clip', 512, '224', 'MIT', 'English',
               151, 2221, [Retrieval('Flickr30k', 'R@5', 83.4, 94.9, CLIP_BENCHMARK)],
               'the default: fastest on a CPU'),
    Checkpoint('facebook/metaclip-b32-400m', 'clip', 512, '224', None, 'English', 151, 2668,
               [], 'CLIP architecture trained on MetaCLIP data'),
    Checkpoint('google/siglip2-base-patch16-256', 'siglip', 768, '256', 'Apache-2.0',
               'multilingual', 375, 6266,
               [Retrieval('COCO', 'R@1', 53.2, 69.7, SIGLIP2_README)]),
    Checkpoint('google/siglip2-base-patch16-naflex', 'siglip2', 768, 'NaFlex, 256 patches',
               'Apache-2.0', 'multilingual', 375, 8243,
               [Retrieval('COCO', 'R@1', 51.1, 67.3, SIGLIP2_README)],
               'keeps the aspect ratio'),
    Checkpoint('google/siglip2-so400m-patch14-384', 'siglip', 1152, '384', 'Apache-2.0',
               'multilingual', 1136, None,
               [Retrieval('COCO', 'R@1', 55.8, 71.7, SIGLIP2_README)], 'best quality; GPU'),
    Checkpoint('OFA-Sys/chinese-clip-vit-base-patch16', 'chinese_clip', 512, '224', None,
               'Chinese', 188, 6339,
               [Retrieval('Flickr30K-CN', 'R@1', 62.7, 74.6, CN_CLIP_RESULTS)]),
    Checkpoint('BAAI/AltCLIP', 'altclip', 768, '224', None, 'English, Chinese', 864, None,
               [Retrieval('Flickr30k (EN)', 'R@1', 72.5, 86.0, ALTCLIP_README),
                Retrieval('Flickr30k (CN)', 'R@1', 69.8, 84.8, ALTCLIP_README)]),
]


def rows() -> List[dict]:
    return [{**asdict(c), 'family_title': FAMILIES[c.family].title} for c in CHECKPOINTS]


def _cell(value) -> str:
    return '' if value is None else str(value)


def _cost(c: 'Checkpoint') -> str:
    """Milliseconds as measured, and relative to CLIP B/32 in the same run (the ratio is what
    survives the machine's load)."""
    if c.cpu_ms_per_image is None:
        return ''
    return f'{c.cpu_ms_per_image} ({c.cpu_ms_per_image / CHECKPOINTS[0].cpu_ms_per_image:.1f}×)'


def markdown() -> str:
    """The table of the README's "Choosing a model" and of ``loupe models``."""
    lines = ['| checkpoint (hub id) | family | dim | input px | licence | languages | '
             'params (M) | CPU ms/image (× B/32) | published zero-shot retrieval (T→I / I→T) |',
             '|---|---|---:|---|---|---|---:|---:|---|']
    sources = []
    for c in CHECKPOINTS:
        figures = []
        for r in c.retrieval:
            if r.source not in sources:
                sources.append(r.source)
            figures.append(f'{r.dataset} {r.metric} {r.text_to_image} / {r.image_to_text} '
                           f'[{sources.index(r.source) + 1}]')
        lines.append(f'| `{c.hub_id}` | {c.family} | {c.embedding} | {c.input} | '
                     f'{_cell(c.licence)} | {c.languages} | {_cell(c.parameters_m)} | '
                     f'{_cost(c)} | {"; ".join(figures)} |')
    lines.append('')
    lines += [f'[{i}] {source}' for i, source in enumerate(sources, 1)]
    return '\n'.join(lines)
