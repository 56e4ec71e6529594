"""The request parameters of /recommend, /duplicates and /map: names, types, defaults, bounds.

One place that turns a request's ``parameters`` into checked values (a clear error naming the
parameter otherwise). Names other endpoints use (``limit``, ``filter``) mean the same here.
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from loupe.errors import InvalidRequestError
from loupe.explore.groups import METHODS

ALL = 'all'
METHODS_OF = {**{m: (m,) for m in METHODS}, ALL: METHODS}
PROJECTIONS = ('pca', 'umap')


@dataclass(frozen=True)
class Param:
    kind: type
    default: Any
    low: Optional[float] = None
    high: Optional[float] = None
    choices: Tuple = ()
    check: Optional[Callable[[Any], Any]] = None


def _ids(value) -> list:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ValueError('expected a list of image ids')
    return list(dict.fromkeys(value))


def _filter(value):
    if value is not None and not isinstance(value, dict):
        raise ValueError('expected a dict of tag -> value(s)')
    return value or None


RECOMMEND = {
    'like': Param(list, None, check=_ids),
    'dislike': Param(list, (), check=_ids),
    'limit': Param(int, 10, 1, 1000),
    'ask': Param(int, 4, 0, 50),
    'candidates': Param(int, 2000, 10, 100_000),  # ANN candidate set size above exhaustive_max
    'exhaustive_max': Param(int, 20_000, 0, 10_000_000),  # score everything up to this many
    'filter': Param(dict, None, check=_filter),
}
DUPLICATES = {
    'method': Param(str, ALL, choices=METHODS + (ALL,)),
    # measured on coco128 edited copies (README): edits reach 10 bits, other photos start at 16
    'perceptual_threshold': Param(int, 10, 0, 24),
    'semantic_threshold': Param(float, 0.95, 0.5, 1.0),  # whole-image cosine similarity
    'neighbours': Param(int, 10, 1, 100),  # k of the kNN search per image (semantic)
    'filter': Param(dict, None, check=_filter),
}
MAP = {
    'sample': Param(int, 3000, 1, 20_000),
    'seed': Param(int, 0, 0, 2 ** 32 - 1),
    'projection': Param(str, 'pca', choices=PROJECTIONS),
    'thumb_size': Param(int, 96, 16, 256),
    'filter': Param(dict, None, check=_filter),
}


def read(spec: Dict[str, Param], parameters: Optional[dict], endpoint: str) -> Dict[str, Any]:
    """Checked values of ``spec``'s parameters (defaults for those not given)."""
    parameters = parameters or {}
    values = {}
    for name, p in spec.items():
        value = parameters.get(name)
        if value is None or (p.check is _ids and not value):
            if p.default is None and p.check is _ids:
                raise InvalidRequestError(f'{endpoint}: {name!r} is required (image ids)')
            values[name] = p.default if not isinstance(p.default, tuple) else list(p.default)
            continue
        try:
            if p.check is not None:
                value = p.check(value)
            elif p.kind is int:
                if isinstance(value, bool) or float(value) != int(float(value)):
                    raise ValueError('expected an integer')
                value = int(float(value))
            elif p.kind is float:
                value = float(value)
            elif p.kind is str:
                value = str(value)
        except (TypeError, ValueError) as e:
            raise InvalidRequestError(f'{endpoint}: {name}={value!r}: {e}') from None
        if p.choices and value not in p.choices:
            raise InvalidRequestError(f'{endpoint}: {name}={value!r} is not one of '
                                      f'{", ".join(p.choices)}')
        if p.low is not None and not p.low <= value <= p.high:
            raise InvalidRequestError(f'{endpoint}: {name}={value!r} is out of range '
                                      f'[{p.low}, {p.high}]')
        values[name] = value
    return values
