"""The client side of exploring: ``Loupe.recommend``, ``Loupe.duplicates``, ``Loupe.map_points``
(mixed into ``loupe.client.Loupe``; they post to the service like every other call)."""
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional

from loupe.errors import InvalidRequestError
from loupe.results import Result, result_from_match
from loupe.schema import ImageDoc


@dataclass
class Recommendation:
    results: List[Result]  # best first; never a voted image
    ask: List[Result]  # vote on these next: uncertain ones alternated with top-ranked ones
    model: str  # 'svm' or 'similarity' (see loupe.explore.recommend)


@dataclass
class DuplicateMember:
    id: str
    uri: Optional[str]
    uris: List[str]  # every path or URL it was indexed under
    width: Optional[int]
    height: Optional[int]
    similarity: Optional[float]  # of the edge that joined it; None for the one to keep
    method: Optional[str]  # exact, perceptual or semantic
    joined_to: Optional[str]
    preview: Optional[bytes] = field(default=None, repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        del data['preview']
        return data


@dataclass
class MapResult:
    points: list  # loupe.explore.map_page.MapPoint, thumbnails included
    total: int  # images that passed the filter; len(points) when none were left out


def _answer(client, endpoint: str, doc: ImageDoc, options: dict) -> ImageDoc:
    (answer,) = client.post(endpoint, [doc], {k: v for k, v in options.items() if v is not None})
    if answer.error:
        raise InvalidRequestError(answer.error)
    return answer


class ExploreMixin:
    def recommend(self, like: Iterable[str], dislike: Iterable[str] = (), limit: int = 10,
                  ask: int = 4, filter: Optional[dict] = None, with_preview: bool = False,
                  **parameters) -> Recommendation:
        """More like the ``like`` images, less like the ``dislike`` ones (image ids)."""
        doc = _answer(self, '/recommend', ImageDoc(), dict(
            parameters, like=list(like), dislike=list(dislike), limit=limit, ask=ask,
            filter=filter, with_preview=with_preview or None))
        results = [result_from_match(m) for m in doc.matches]
        return Recommendation([r for r, m in zip(results, doc.matches) if not m.ask],
                              [r for r, m in zip(results, doc.matches) if m.ask],
                              doc.tags.get('model', ''))

    def duplicates(self, method: str = 'all', perceptual_threshold: Optional[int] = None,
                   semantic_threshold: Optional[float] = None, filter: Optional[dict] = None,
                   with_preview: bool = False, **parameters) -> List[List[DuplicateMember]]:
        """Groups of duplicates, the member to keep first (largest, then oldest)."""
        doc = _answer(self, '/duplicates', ImageDoc(), dict(
            parameters, method=method, perceptual_threshold=perceptual_threshold,
            semantic_threshold=semantic_threshold, filter=filter,
            with_preview=with_preview or None))
        groups: Dict[int, List[DuplicateMember]] = {}
        for m in doc.matches:
            groups.setdefault(m.group, []).append(DuplicateMember(
                id=m.parent_id, uri=m.uri, uris=list(m.uris), width=m.width, height=m.height,
                similarity=m.score if m.joined_by else None, method=m.joined_by,
                joined_to=m.joined_to, preview=m.preview))
        return [groups[k] for k in sorted(groups)]

    def map_points(self, query: Optional[str] = None, sample: int = 3000,
                   filter: Optional[dict] = None, projection: str = 'pca', seed: int = 0,
                   thumb_size: int = 96) -> MapResult:
        """The (sampled) collection projected to 2-D, with thumbnails, coloured by ``query``."""
        from loupe.explore.map_page import MapPoint

        doc = _answer(self, '/map', ImageDoc(text=query) if query else ImageDoc(), dict(
            sample=sample, filter=filter, projection=projection, seed=seed,
            thumb_size=thumb_size))
        points = [MapPoint(id=m.parent_id, uri=m.uri, x=m.position[0], y=m.position[1],
                           similarity=m.scores.get('query'), paths=list(m.uris),
                           thumbnail=m.preview) for m in doc.matches]
        return MapResult(points, int(doc.tags.get('total', len(points))))
