"""The request parameters of /recommend, /duplicates and /map: names, types, defaults, bounds.

Each endpoint's parameters are one frozen dataclass of ``loupe.config`` settings, so their
defaults live here once and their ``Spec`` is what ``loupe.parameters.ENDPOINTS`` checks a
request against (unknown names are errors listing the valid ones). Names other endpoints use
(``limit``, ``filter``, ``with_preview``) mean the same here.
"""
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from loupe.config import TAG_FILTER, Spec, setting
from loupe.errors import InvalidRequestError
from loupe.explore.groups import METHODS

ALL = 'all'
METHODS_OF = {**{m: (m,) for m in METHODS}, ALL: METHODS}
PROJECTIONS = ('pca', 'umap')
_IDS = Spec(list, 'a list of image ids', check=lambda ids: all(ids))
_PREVIEW = Spec(bool, "return each result's preview JPEG")


@dataclass(frozen=True)
class RecommendParameters:
    like: Tuple[str, ...] = setting((), _IDS)  # required: checked by read()
    dislike: Tuple[str, ...] = setting((), _IDS)
    limit: int = setting(10, Spec(int, 'results', min=1, cap=1000))
    ask: int = setting(4, Spec(int, 'uncertain images to vote on next', min=0, cap=50))
    # above exhaustive_max images, only an ANN candidate set of about this many is scored
    candidates: int = setting(2000, Spec(int, 'ANN candidate set size', min=10, cap=100_000))
    exhaustive_max: int = setting(20_000, Spec(int, 'score every image up to this many', min=0,
                                               cap=10_000_000))
    filter: Optional[dict] = setting(None, TAG_FILTER)
    with_preview: bool = setting(False, _PREVIEW)


@dataclass(frozen=True)
class DuplicatesParameters:
    method: str = setting(ALL, Spec(str, 'which kind of duplicate', choices=METHODS + (ALL,)))
    # measured on coco128 edited copies (README): edits reach 10 bits, other photos start at 16
    perceptual_threshold: int = setting(10, Spec(int, 'pHash bits apart, at most', min=0,
                                                 cap=24))
    semantic_threshold: float = setting(0.95, Spec(float, 'whole-image cosine, at least',
                                                   min=0.5, max=1.0))
    neighbours: int = setting(10, Spec(int, 'k of the kNN search per image (semantic)', min=1,
                                       cap=100))
    filter: Optional[dict] = setting(None, TAG_FILTER)
    with_preview: bool = setting(False, _PREVIEW)


@dataclass(frozen=True)
class MapParameters:
    sample: int = setting(3000, Spec(int, 'images on the map, at most', min=1, cap=20_000))
    seed: int = setting(0, Spec(int, 'seed of the random sample', min=0, cap=2 ** 32 - 1))
    projection: str = setting('pca', Spec(str, '2-D projection', choices=PROJECTIONS))
    thumb_size: int = setting(96, Spec(int, 'thumbnail side, pixels', min=16, cap=256))
    filter: Optional[dict] = setting(None, TAG_FILTER)


PARAMETERS = {'/recommend': RecommendParameters, '/duplicates': DuplicatesParameters,
              '/map': MapParameters}


def defaults(endpoint: str) -> Dict[str, Any]:
    return dataclasses.asdict(PARAMETERS[endpoint]())


def read(endpoint: str, parameters: Optional[dict]) -> Dict[str, Any]:
    """Checked values of the endpoint's parameters, defaults for those not given."""
    from loupe.parameters import check_parameters

    values = {**defaults(endpoint), **check_parameters(endpoint, parameters)}
    for name in ('like', 'dislike'):
        if name in values:
            values[name] = list(dict.fromkeys(values[name]))
    if endpoint == '/recommend' and not values['like']:
        raise InvalidRequestError("/recommend: 'like' is required (image ids)")
    return values
