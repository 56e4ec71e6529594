"""Executor settings: one definition per executor, holding the only defaults.

Each executor takes its settings from one frozen dataclass here; ``config.yml`` and the flows
set only what differs (and say why). Every field carries a ``Spec`` (type, range, choices), the
same one a request parameter of that name is checked against (``loupe.parameters``).

Precedence, highest first (the README and ``--help`` say the same):

    command-line flag or request parameter > environment (LOUPE_*) > flow YAML > default here

Only model checkpoints and the workspace have an environment variable; requests can set only
what ``loupe.parameters`` allows (never a model, a device or a path).

This module imports nothing heavy: the CLI, the client and the README check load it.
"""
import dataclasses
import re
from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, Optional, Tuple

from loupe.constants import BACKENDS, MAX_BLOB_BYTES
from loupe.constants import PRECISIONS as PRECISIONS_ENCODER
from loupe.errors import ConfigError, InvalidRequestError

# Names of registries elsewhere (loupe.segment.METHODS, loupe.rank.AGGREGATIONS, ...), kept
# here so that checking a setting does not import torch; tests check they agree.
PARTITION_METHODS = ('none', 'grid', 'detector', 'dino')
DINO_MODES = ('heads', 'sum')
AGGREGATIONS = ('max', 'mean', 'sum_top_k')
PRECISIONS = ('f16', 'f32', 'i8')


@dataclass(frozen=True)
class Spec:
    """The type and allowed values of one setting or request parameter.

    Numbers arriving through gRPC are floats (protobuf ``Struct``), so an integral float is an
    integer; 1.7, ``"3"`` or ``True`` for an integer are errors, never truncated or coerced.
    """

    kind: type  # int, float, bool, str, dict or list (of strings)
    help: str = ''
    min: Optional[float] = None
    max: Optional[float] = None
    cap: Optional[float] = None  # the most a request may ask for (a setting may go beyond)
    min_open: bool = False  # (min, ...] rather than [min, ...]
    max_open: bool = False
    choices: Tuple[str, ...] = ()
    nullable: bool = False  # None is a value (it means "automatic" or "not set")
    check: Optional[Callable[[Any], bool]] = dataclasses.field(default=None, compare=False)

    def describe(self, capped: bool = False) -> str:
        if self.choices:
            text = 'one of ' + ', '.join(self.choices)
        elif self.check is not None:
            text = self.help  # the check's rule, in words
        else:
            text = {int: 'an integer', float: 'a number', bool: 'true or false',
                    str: 'a non-empty string', dict: 'an object',
                    list: 'a list of strings'}[self.kind]
            high, high_open = self._high(capped)
            if self.min is not None and high is not None:
                text += (f' in {"(" if self.min_open else "["}{_num(self.min)}, '
                         f'{_num(high)}{")" if high_open else "]"}')
            elif self.min is not None:
                text += f' {">" if self.min_open else ">="} {_num(self.min)}'
            elif high is not None:
                text += f' {"<" if high_open else "<="} {_num(high)}'
        return text + (' or null' if self.nullable else '')

    def _high(self, capped: bool) -> Tuple[Optional[float], bool]:
        if capped and self.cap is not None and (self.max is None or self.cap < self.max):
            return self.cap, False
        return self.max, self.max_open

    def parse(self, name: str, value: Any, error=InvalidRequestError, capped: bool = False):
        """``value`` as this spec's type, or ``error`` naming ``name`` and what it must be;
        ``capped``: a request's value, held to ``cap``."""
        if value is None and self.nullable:
            return None
        out = _convert(self.kind, value)
        ok = out is not _BAD and (not self.choices or out in self.choices)
        if ok and self.kind in (int, float):
            high, high_open = self._high(capped)
            ok = ((self.min is None or (out > self.min if self.min_open else out >= self.min))
                  and (high is None or (out < high if high_open else out <= high)))
        if ok and self.check is not None:
            ok = self.check(out)
        if not ok:
            raise error(f'{name} must be {self.describe(capped)}, got {value!r}')
        return out


# A request's tag filter (/search and the explore endpoints).
TAG_FILTER = Spec(dict, 'only images whose tags match: {"key": value or [values]}',
                  nullable=True)

_BAD = object()


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _convert(kind: type, value: Any):
    if isinstance(value, bool):
        return value if kind is bool else _BAD
    if kind is int:
        if isinstance(value, int):
            return value
        return int(value) if isinstance(value, float) and value.is_integer() else _BAD
    if kind is float:
        return float(value) if isinstance(value, (int, float)) else _BAD
    if kind is str:
        return value if isinstance(value, str) and value else _BAD
    if kind is list:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        return list(value) if ok else _BAD
    return value if isinstance(value, kind) else _BAD


def setting(default, spec: Spec):
    """A dataclass field with its default and its Spec."""
    return dataclasses.field(default=default, metadata={'spec': spec})


def spec_of(cls, name: str) -> Spec:
    return next(f.metadata['spec'] for f in fields(cls) if f.name == name)


def names(cls) -> Tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def build(cls, values: Optional[Dict[str, Any]] = None, base=None, error=ConfigError):
    """``base`` (default: ``cls()``) with ``values`` checked and applied; an unknown name is an
    error listing the valid ones."""
    values = values or {}
    valid = names(cls)
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise error(f'unknown {_title(cls)} setting{"s" if len(unknown) > 1 else ""} '
                    f'{", ".join(unknown)}; valid: {", ".join(valid)}')
    parsed = {k: spec_of(cls, k).parse(k, v, error) for k, v in values.items()}
    return dataclasses.replace(base if base is not None else cls(), **parsed)


def _title(cls) -> str:
    return cls.__name__.replace('Settings', '').lower()


# --- the executors' settings --------------------------------------------------------------------

_DEVICE = Spec(str, "'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'",
               check=lambda v: v in ('auto', 'cpu') or re.fullmatch(r'cuda(:\d+)?', v) is not None)
_MODEL = Spec(str, 'hub id or local folder; null: the environment variable, else the default',
              nullable=True)


@dataclass(frozen=True)
class SegmenterSettings:
    """How images are cut into chunks (``loupe.segment``)."""

    method: str = setting('grid', Spec(str, 'partition method: whole image only, a tiling, an '
                                            'object detector, DINO attention saliency',
                                       choices=PARTITION_METHODS))
    grid_rows: int = setting(3, Spec(int, 'grid rows', min=1, cap=16))
    grid_cols: int = setting(3, Spec(int, 'grid columns', min=1, cap=16))
    # The service indexes with overlapping cells: objects on a border stay whole in a neighbour.
    grid_overlap: float = setting(0.25, Spec(float, "share of a cell overlapping its neighbour's",
                                             min=0, max=1, max_open=True))
    grid_levels: int = setting(1, Spec(int, 'level k adds a (k*rows) x (k*cols) grid', min=1,
                                       cap=4))
    detector_model: Optional[str] = setting(None, _MODEL)
    detector_threshold: float = setting(0.3, Spec(float, 'detector score threshold', min=0,
                                                  max=1))
    dino_model: Optional[str] = setting(None, _MODEL)
    dino_mode: str = setting('heads', Spec(str, 'boxes per attention head, or of the summed map',
                                           choices=DINO_MODES))
    dino_mass: float = setting(0.6, Spec(float, 'share of the attention mass kept (DINO paper)',
                                         min=0, max=1, min_open=True))
    dino_size: int = setting(448, Spec(int, 'longer side of the ViT input, pixels', min=1,
                                       cap=1024))
    min_box_area: float = setting(0.01, Spec(float, 'smallest box, share of the image area',
                                             min=0, max=1, max_open=True))
    nms_iou: float = setting(0.5, Spec(float, 'scored boxes overlapping a better one more go',
                                       min=0, max=1))
    max_boxes: int = setting(32, Spec(int, 'boxes per image besides the whole image', min=0,
                                      cap=256))
    device: str = setting('auto', _DEVICE)
    batch_size: int = setting(8, Spec(int, 'images per model forward pass', min=1))


@dataclass(frozen=True)
class EncoderSettings:
    """Image-text encoder (``loupe.embedder``)."""

    model: Optional[str] = setting(None, _MODEL)
    batch_size: int = setting(32, Spec(int, 'crops or texts per forward pass', min=1))
    device: str = setting('auto', _DEVICE)
    precision: str = setting('fp32', Spec(str, 'fp32; int8 (CPU); bf16 (native-bf16 CPU or GPU); '
                                               'fp16 (GPU)', choices=PRECISIONS_ENCODER))
    backend: str = setting('torch', Spec(str, 'image tower on torch, or onnx (ONNX Runtime, CPU)',
                                         choices=BACKENDS))
    workers: int = setting(1, Spec(int, 'threads that decode and resize; more on a GPU', min=1))


@dataclass(frozen=True)
class IndexerSettings:
    """Chunk index (``loupe.ann``): usearch HNSW over LMDB records."""

    precision: str = setting('f16', Spec(str, 'vector precision in the graph',
                                         choices=PRECISIONS))
    connectivity: int = setting(16, Spec(int, 'HNSW M', min=2))
    expansion_add: int = setting(128, Spec(int, 'HNSW efConstruction', min=1))
    # recall@10 0.985 at 1M chunk vectors, ~0.9 ms (bench/ann.py)
    expansion_search: int = setting(256, Spec(int, 'HNSW ef at search', min=1))
    limit: int = setting(10, Spec(int, 'results per query', min=1, cap=1000))
    chunk_limit: Optional[int] = setting(None, Spec(int, 'chunk hits fetched per query; null: '
                                                         'max(100, 10 * limit)', min=1,
                                                    cap=10_000, nullable=True))
    save_every: Optional[int] = setting(10_000, Spec(int, 'save the graph after this many '
                                                          'new chunks; null: only on close',
                                                     min=1, nullable=True))
    rebuild: bool = setting(False, Spec(bool, 'rebuild the graph from LMDB at start-up'))


@dataclass(frozen=True)
class RankerSettings:
    """Chunk hits -> ranked images (``loupe.rank``)."""

    aggregation: str = setting('max', Spec(str, "an image's score from its chunks' scores",
                                           choices=AGGREGATIONS))
    top_k: int = setting(3, Spec(int, 'chunks summed by sum_top_k', min=1, cap=100))
    limit: int = setting(10, spec_of(IndexerSettings, 'limit'))
    image_store: Optional[str] = setting(None, Spec(
        str, "the parent store's LMDB folder, read to rank only completely written images; "
        'null: $LOUPE_WORKSPACE/ParentStorage/images', nullable=True))


@dataclass(frozen=True)
class RerankerSettings:
    """OWL-ViT reranker (``loupe.rerank``)."""

    model: Optional[str] = setting(None, _MODEL)
    rerank: bool = setting(False, Spec(bool, 'rerank every search (a request may turn it on)'))
    rerank_top_k: int = setting(10, Spec(int, 'results reranked per query', min=1, cap=100))
    rerank_weight: float = setting(0.5, Spec(float, 'weight of the detection score in the '
                                                    'final score', min=0, max=1))
    # OWL's sigmoid class probability; 0.1 is the threshold of OWL-ViT's own zero-shot
    # detection examples. Below it the detected box is no evidence of the query: the result
    # keeps its best chunk's box and only its score changes.
    min_detection_score: float = setting(0.1, Spec(float, 'a detection below this keeps the '
                                                          "chunk's box", min=0, max=1))
    batch_size: int = setting(8, Spec(int, 'images per forward pass', min=1))
    device: str = setting('auto', _DEVICE)
    half: bool = setting(False, Spec(bool, 'float16 on a GPU (ignored on a CPU)'))
    image_store: Optional[str] = setting(None, Spec(
        str, "the parent store's LMDB folder; null: $LOUPE_WORKSPACE/ParentStorage/images",
        nullable=True))


@dataclass(frozen=True)
class StorageSettings:
    """Parent storage (``loupe.store``)."""

    preview_size: int = setting(1024, Spec(int, 'longest side of the stored preview JPEG',
                                           min=16, cap=4096))
    path: Optional[str] = setting(None, Spec(str, "LMDB folder; null: the executor's workspace",
                                             nullable=True))


@dataclass(frozen=True)
class GatewaySettings:
    """The loupe gateway (``executors/gateway``): what the service accepts, and from whom."""

    api_key: Optional[str] = setting(None, Spec(
        str, 'key every call must carry (env LOUPE_API_KEY wins); null: none, so bind to '
             'loopback only', nullable=True))
    allow_folders: Tuple[str, ...] = setting((), Spec(
        list, 'local folders whose files a uri may name (and env LOUPE_ALLOW_FOLDERS)'))
    allow_urls: Tuple[str, ...] = setting((), Spec(
        list, 'http(s)://HOST patterns a uri may name, e.g. https://*.example.com (and env '
              'LOUPE_ALLOW_URLS)'))
    allow_origins: Tuple[str, ...] = setting((), Spec(
        list, "web origins besides the gateway's own that may post (a page hosted elsewhere)"))
    max_docs: Optional[int] = setting(None, Spec(
        int, 'documents in one request, below the per-endpoint caps (Request parameters); '
             'null: those caps', min=1, nullable=True))
    max_blob_bytes: int = setting(MAX_BLOB_BYTES, Spec(int, 'bytes of one image, sent or read',
                                                       min=1, max=MAX_BLOB_BYTES))
    fetch_timeout: float = setting(10.0, Spec(float, 'seconds for all the reads of one request',
                                              min=0, min_open=True))
    fetch_concurrency: int = setting(8, Spec(int, 'reads in flight per request', min=1))
    static_dir: Optional[str] = setting(None, Spec(
        str, 'folder served at / (the web page); null: the one in the package', nullable=True))
    search_bypass: Optional[Dict[str, Optional[str]]] = setting(None, Spec(
        dict, 'executors a /search goes around (no hop): name -> the request parameter that '
              "brings it back (null: always around); loupe's flow loader fills it in (the "
              'segmenter; the reranker when its rerank is off); null: none', nullable=True))


# Executor name in the flows -> its settings.
EXECUTOR_SETTINGS = {
    'segmenter': SegmenterSettings, 'encoder': EncoderSettings, 'indexer': IndexerSettings,
    'ranker': RankerSettings, 'reranker': RerankerSettings, 'storage': StorageSettings,
    'gateway': GatewaySettings,
}


def _value(default) -> str:
    return 'null' if default is None else str(default).lower() if isinstance(default, bool) \
        else str(default)


def settings_table() -> str:
    """The README's table of executor settings, generated from the definitions above."""
    rows = ['| executor | setting | default | allowed | what |', '|---|---|---|---|---|']
    for executor, cls in EXECUTOR_SETTINGS.items():
        for f in fields(cls):
            spec = f.metadata['spec']
            rows.append(f'| `{executor}` | `{f.name}` | `{_value(f.default)}` | '
                        f'{spec.describe()} | {spec.help} |')
    return '\n'.join(rows)


if __name__ == '__main__':
    print(settings_table())
