"""Document schema (docarray v2) shared by every executor, the client and the CLI.

Boxes are ``[x1, y1, x2, y2]`` in the original image's pixels, EXIF orientation applied.
"""
from typing import Dict, List, Optional

from docarray import BaseDoc, DocList
from docarray.typing import NdArray
from pydantic import Field, validator

from loupe.wire import CODEC  # the same protobuf messages as docarray's codec, faster


class Chunk(*CODEC, BaseDoc):
    """A region of an image that is embedded on its own."""

    parent_id: str = ''
    box: List[float] = Field(default_factory=list)
    kind: str = ''  # partition method: loupe.constants.KIND_*
    label: Optional[str] = None  # detector class name, where there is one
    score: Optional[float] = None  # proposal confidence, where there is one
    embedding: Optional[NdArray] = None


class Match(*CODEC, BaseDoc):
    """One search result: a parent image, its scores per stage and where the query is in it."""

    parent_id: str = ''
    uri: Optional[str] = None
    uris: List[str] = Field(default_factory=list)  # every path or URL it was indexed under
    tags: Dict = Field(default_factory=dict)
    width: Optional[int] = None
    height: Optional[int] = None
    score: float = 0.0  # the score the result is ranked by
    scores: Dict[str, float] = Field(default_factory=dict)  # keys: loupe.constants.SCORE_*
    highlight_box: Optional[List[float]] = None
    highlight_source: Optional[str] = None  # loupe.constants.SOURCE_*
    chunk_kind: Optional[str] = None  # kind of the best-matching chunk
    preview: Optional[bytes] = None  # JPEG of the image, only when a search asks `with_preview`
    # /recommend: an image whose vote would teach the model most (not part of the ranking)
    ask: bool = False
    # /duplicates: the member's group, and the edge that joined it (method, other member id)
    group: Optional[int] = None
    joined_by: Optional[str] = None
    joined_to: Optional[str] = None
    position: Optional[List[float]] = None  # /map: [x, y] of the 2-D projection, in [0, 1]

    @validator('tags', 'scores', 'uris', pre=True, always=True)
    def _empty_when_null(cls, value, field):
        return field.default_factory() if value is None else value


class Term(*CODEC, BaseDoc):
    """One weighted term of a composite query (loupe.query): a text, or an image as blob/uri."""

    text: Optional[str] = None
    blob: Optional[bytes] = None
    uri: Optional[str] = None
    weight: float = 1.0


class ImageDoc(*CODEC, BaseDoc):
    """An image to index, or a query (``text``, an image as ``blob``/``uri``, or ``terms``)."""

    uri: Optional[str] = None
    blob: Optional[bytes] = None
    text: Optional[str] = None
    tags: Dict = Field(default_factory=dict)
    width: Optional[int] = None
    height: Optional[int] = None
    content_hash: Optional[str] = None
    embedding: Optional[NdArray] = None
    chunks: DocList[Chunk] = Field(default_factory=lambda: DocList[Chunk]())
    matches: DocList[Match] = Field(default_factory=lambda: DocList[Match]())
    terms: DocList[Term] = Field(default_factory=lambda: DocList[Term]())  # a composite query
    # A query's chunk hits from the indexer to the ranker, as one compact message
    # (loupe.ann.ChunkHits.to_bytes) instead of a hundred documents; the ranker clears it.
    chunk_hits: Optional[bytes] = None
    status: Optional[str] = None  # loupe.constants.STATUS_* after /index
    error: Optional[str] = None  # why this item failed; the rest of the request goes on
    warning: Optional[str] = None  # a partial answer: which shards did not answer (loupe.shard)
    shard: Optional[Dict] = None  # inside a flow only: which shard answered (loupe.shard_merge)

    @validator('tags', 'chunks', 'matches', 'terms', pre=True, always=True)
    def _empty_when_null(cls, value, field):
        # Jina's HTTP gateway sends omitted fields as null; they mean "empty", not an error.
        return field.default_factory() if value is None else value

