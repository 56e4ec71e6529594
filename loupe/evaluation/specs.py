"""Partition-method specs: a method name plus variants of its settings, in one short string.

    SPEC   := METHOD [":" ROWS "x" COLS] ("+" OPTION)*
    OPTION := KEY VALUE | KEY "=" VALUE

``METHOD`` is a partition method (``none``, ``grid``, ``detector``, ``dino``); ``:RxC`` sets a
grid's rows and columns; each option sets one segmenter setting (``loupe.segment.Settings``),
by its full name or a short alias (``ALIASES``). Words need the ``=``: ``dino+mode=sum``.
Examples: ``grid``, ``grid:4x4``, ``grid:3x3+overlap0.25``, ``grid:3x3+levels2``,
``detector+threshold0.5+max16``, ``dino+mass0.8``. Values are validated like request parameters.
"""
import re
from dataclasses import asdict, dataclass
from typing import List, Sequence

from loupe.errors import InvalidRequestError
from loupe.segment import METHODS, SETTING_NAMES, Partitioner, Settings

ALIASES = {
    'overlap': 'grid_overlap', 'levels': 'grid_levels', 'rows': 'grid_rows', 'cols': 'grid_cols',
    'threshold': 'detector_threshold', 'mass': 'dino_mass', 'mode': 'dino_mode',
    'size': 'dino_size', 'max': 'max_boxes', 'minarea': 'min_box_area', 'nms': 'nms_iou',
}
_GRID = re.compile(r'(\d+)x(\d+)')
_OPTION = re.compile(r'([a-z_]+?)(-?\d[\d.e-]*)')


@dataclass(frozen=True)
class MethodSpec:
    label: str  # the spec as given: the key of its results
    settings: Settings


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _option(option: str, spec: str) -> tuple:
    key, sep, value = option.partition('=')
    if not sep:
        match = _OPTION.fullmatch(option)
        if not match:
            raise InvalidRequestError(f'method spec {spec!r}: cannot read option {option!r}; '
                                      'write KEY VALUE (overlap0.25) or KEY=VALUE (mode=sum)')
        key, value = match.groups()
    name = ALIASES.get(key, key)
    if name not in SETTING_NAMES or name == 'method':
        valid = sorted(set(ALIASES) | set(SETTING_NAMES) - {'method'})
        raise InvalidRequestError(f'method spec {spec!r}: unknown option {key!r}; '
                                  f'valid: {", ".join(valid)}')
    return name, _value(value)


def parse_spec(spec: str, partitioner: Partitioner) -> MethodSpec:
    """The settings ``spec`` names, on top of the partitioner's defaults."""
    label = spec.strip()
    head, *options = label.split('+')
    method, _, grid = head.partition(':')
    if method not in METHODS:
        raise InvalidRequestError(f'method spec {spec!r}: unknown method {method!r}; '
                                  f'valid: {", ".join(sorted(METHODS))}')
    overrides = {'method': method}
    if grid:
        match = _GRID.fullmatch(grid)
        if method != 'grid' or not match:
            raise InvalidRequestError(f'method spec {spec!r}: ":ROWSxCOLS" (e.g. grid:4x4) '
                                      'belongs to grid only')
        overrides.update(grid_rows=int(match[1]), grid_cols=int(match[2]))
    for option in options:
        name, value = _option(option, spec)
        overrides[name] = value
    return MethodSpec(label, partitioner.resolve(**overrides))


def parse_specs(text: str, partitioner: Partitioner) -> List[MethodSpec]:
    """Comma-separated specs, duplicates dropped, order kept."""
    labels: Sequence[str] = list(dict.fromkeys(s.strip() for s in text.split(',') if s.strip()))
    if not labels:
        raise InvalidRequestError('no partition method given')
    return [parse_spec(label, partitioner) for label in labels]


def describe(spec: MethodSpec) -> dict:
    """The settings that matter to the spec's method (others are left out of reports)."""
    s = asdict(spec.settings)
    prefixes = {'grid': 'grid_', 'detector': 'detector_', 'dino': 'dino_'}
    keep = ('min_box_area', 'nms_iou', 'max_boxes') if spec.settings.method != 'none' else ()
    own = prefixes.get(spec.settings.method)
    return {'method': s['method'],
            **{k: v for k, v in s.items() if (own and k.startswith(own)) or k in keep}}
