"""Request parameters: an explicit, typed allow-list per endpoint, with caps.

A request's ``parameters`` reach every executor of a flow. Each executor checks them against
its endpoint's entry in ``ENDPOINTS`` before using any: a name not listed is an error that lists
the valid ones, a wrong type (``limit`` 1.7 or ``"abc"``) or a value over its cap is an
``InvalidRequestError`` naming the rule, never a silent truncation. Models, devices, paths and
batch sizes are the service's settings (``loupe.config``), never a request's.

Where a parameter overrides an executor setting of the same name, it shares that setting's
``Spec`` (so the YAML and a request obey one rule). To add an endpoint or a parameter, add it to
``ENDPOINTS`` below; the README's table is ``python -m loupe.parameters``, and a test checks
that they agree.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from loupe.config import (TAG_FILTER, IndexerSettings, RankerSettings, RerankerSettings,
                          SegmenterSettings, Spec, StorageSettings, names, spec_of)
from loupe.errors import InvalidRequestError
from loupe.explore.params import PARAMETERS as EXPLORE

# Jina's client adds this key to every request's parameters (executors' returned dicts).
RESERVED = frozenset({'__results__'})

MAX_BLOB_BYTES = 64 * 1024 * 1024  # one image's bytes (the gateway's cap too); larger: per item
MAX_QUERY_CHARS = 1000  # a text query (CLIP reads 77 tokens of it)


@dataclass(frozen=True)
class Endpoint:
    parameters: Dict[str, Spec] = field(default_factory=dict)
    max_docs: int = 512  # documents per request (the gateway's cap); more: refused as a whole


def _from(cls, *fields: str) -> Dict[str, Spec]:
    return {name: spec_of(cls, name) for name in fields}


ENDPOINTS: Dict[str, Endpoint] = {
    '/index': Endpoint({
        **_from(SegmenterSettings, 'method', 'grid_rows', 'grid_cols', 'grid_overlap',
                'grid_levels', 'detector_threshold', 'dino_mode', 'dino_mass', 'dino_size',
                'min_box_area', 'nms_iou', 'max_boxes'),
        **_from(StorageSettings, 'preview_size'),
    }, max_docs=512),
    '/search': Endpoint({
        **_from(IndexerSettings, 'limit', 'chunk_limit'),
        'filter': TAG_FILTER,
        **_from(RankerSettings, 'aggregation', 'top_k'),
        **_from(RerankerSettings, 'rerank', 'rerank_top_k', 'rerank_weight'),
        'with_preview': Spec(bool, 'return each result\'s preview JPEG'),
    }, max_docs=512),
    '/delete': Endpoint(max_docs=10_000),
    '/exists': Endpoint(max_docs=10_000),
    '/find': Endpoint({
        'under': Spec(bool, "each doc's uri is a folder: every image with a path inside it"),
    }, max_docs=10_000),
    '/update': Endpoint({
        'untag': Spec(list, 'tag names to remove'),
        'remove_uris': Spec(list, 'paths or URLs the images are no longer under'),
    }, max_docs=10_000),
    # defaults: loupe.explore.params. A document is one whole-collection answer: a few at most.
    **{name: Endpoint(_from(cls, *names(cls)), max_docs=8) for name, cls in EXPLORE.items()},
}


def check_parameters(endpoint: str, parameters: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The request's parameters for ``endpoint``, each checked and of its Spec's type."""
    spec = _endpoint(endpoint)
    given = {k: v for k, v in (parameters or {}).items() if k not in RESERVED}
    unknown = sorted(set(given) - set(spec.parameters))
    if unknown:
        valid = ', '.join(spec.parameters) or 'none'
        raise InvalidRequestError(
            f'unknown parameter{"s" if len(unknown) > 1 else ""} {", ".join(unknown)} for '
            f'{endpoint}; valid: {valid}')
    return {name: spec.parameters[name].parse(name, value, capped=True)
            for name, value in given.items()}


def check_count(endpoint: str, count: int) -> None:
    cap = _endpoint(endpoint).max_docs
    if count > cap:
        raise InvalidRequestError(f'{count} documents in one {endpoint} request; at most {cap}: '
                                  'send them in several requests')


def document_problem(blob: Optional[bytes], text: Optional[str]) -> Optional[str]:
    """Why one document is over a cap, or None."""
    if blob is not None and len(blob) > MAX_BLOB_BYTES:
        return f'image of {len(blob):,} bytes; at most {MAX_BLOB_BYTES:,}'
    if text is not None and len(text) > MAX_QUERY_CHARS:
        return f'query text of {len(text):,} characters; at most {MAX_QUERY_CHARS:,}'
    return None


def _endpoint(endpoint: str) -> Endpoint:
    try:
        return ENDPOINTS[endpoint]
    except KeyError:
        raise InvalidRequestError(f'unknown endpoint {endpoint!r}; valid: '
                                  f'{", ".join(ENDPOINTS)}') from None


def parameters_table() -> str:
    """The README's table of request parameters, generated from ``ENDPOINTS``."""
    rows = ['| endpoint | parameter | allowed | what |', '|---|---|---|---|']
    for name, endpoint in ENDPOINTS.items():
        for parameter, spec in endpoint.parameters.items():
            rows.append(f'| `{name}` | `{parameter}` | {spec.describe(capped=True)} '
                        f'| {spec.help} |')
        if not endpoint.parameters:
            rows.append(f'| `{name}` | (none) | | |')
    rows.append('')
    rows.append('Documents per request: ' + ', '.join(
        f'`{name}` {endpoint.max_docs:,}' for name, endpoint in ENDPOINTS.items())
        + f'. An image (`blob`) is at most {MAX_BLOB_BYTES // 2**20} MiB and a text query at '
          f'most {MAX_QUERY_CHARS:,} characters; a document over either is reported with the '
          'reason and the rest of the request goes on.')
    return '\n'.join(rows)


if __name__ == '__main__':
    print(parameters_table())
