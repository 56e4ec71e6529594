"""Search results as the client and the CLI hand them out, with no heavy imports (the CLI's
fast path builds them from the service's JSON)."""
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional


@dataclass
class Result:
    id: str  # the image's id
    uri: Optional[str]
    score: float
    highlight: Optional[List[float]]  # [x1, y1, x2, y2] in original pixels
    highlight_source: Optional[str]
    scores: Dict[str, float] = field(default_factory=dict)
    tags: Dict = field(default_factory=dict)
    uris: List[str] = field(default_factory=list)  # every path it was indexed under
    width: Optional[int] = None
    height: Optional[int] = None
    chunk_kind: Optional[str] = None
    preview: Optional[bytes] = field(default=None, repr=False)  # with search(with_preview=True)

    def to_dict(self) -> dict:
        data = asdict(self)
        del data['preview']
        return data


class Results(list):
    """Search results, best first; ``warning`` says when they are partial (a shard was down)."""

    warning: Optional[str] = None


def result_from_match(m) -> Result:
    """From a ``loupe.schema.Match``."""
    return Result(id=m.parent_id, uri=m.uri, score=m.score, highlight=m.highlight_box,
                  highlight_source=m.highlight_source, scores=dict(m.scores), tags=dict(m.tags),
                  uris=list(m.uris), width=m.width, height=m.height, chunk_kind=m.chunk_kind,
                  preview=m.preview)


def result_from_json(m: dict) -> Result:
    """From a match as the HTTP gateway returns it."""
    return Result(id=m.get('parent_id') or m.get('id'), uri=m.get('uri'),
                  score=float(m.get('score') or 0.0), highlight=m.get('highlight_box'),
                  highlight_source=m.get('highlight_source'), scores=m.get('scores') or {},
                  tags=m.get('tags') or {}, uris=m.get('uris') or [], width=m.get('width'),
                  height=m.get('height'), chunk_kind=m.get('chunk_kind'))


def page(results: List[Result], offset: int = 0, min_score: Optional[float] = None):
    """Drop the first ``offset`` results (the service was asked for ``limit + offset``) and
    those under ``min_score``."""
    kept = Results(r for r in results[offset:] if min_score is None or r.score >= min_score)
    kept.warning = getattr(results, 'warning', None)
    return kept
