"""The Python client: index paths, URLs or bytes; search by text or image.

``Loupe`` wraps anything with Jina's ``post``: over gRPC, one persistent channel to the gateway
(loupe.transport) of a running service or of an in-process ``Flow``; over HTTP a ``jina.Client``
or the ``Flow`` itself. The same calls work against all of them.
"""
import contextlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Optional

from docarray import DocList

from loupe.constants import STATUS_ERROR, STATUS_INDEXED
from loupe.errors import ImageLoadError, InvalidRequestError, LoupeError
from loupe.flows import jina_defaults, load_flow
from loupe.schema import ImageDoc
from loupe.sources import Problem, Source, describe, expand, is_url, to_doc
from loupe.transport import GrpcGateway

DEFAULT_PORT = 54000
_IN_FLIGHT = 2  # index requests sent before the first answer is awaited


@dataclass
class Result:
    id: str
    uri: Optional[str]
    score: float
    highlight: Optional[List[float]]  # [x1, y1, x2, y2] in original pixels
    highlight_source: Optional[str]
    scores: Dict[str, float] = field(default_factory=dict)
    tags: Dict = field(default_factory=dict)
    width: Optional[int] = None
    height: Optional[int] = None
    chunk_kind: Optional[str] = None
    preview: Optional[bytes] = field(default=None, repr=False)  # with search(with_preview=True)

    def to_dict(self) -> dict:
        data = asdict(self)
        del data['preview']
        return data


@dataclass
class IndexReport:
    indexed: List[str] = field(default_factory=list)  # sources now searchable
    skipped: List[Problem] = field(default_factory=list)  # already indexed, or duplicates
    errors: List[Problem] = field(default_factory=list)  # not indexed, with the reason
    chunks: int = 0


def _check(response: DocList[ImageDoc]) -> DocList[ImageDoc]:
    for doc in response:
        if doc.error:
            raise InvalidRequestError(doc.error)
    return response


class Loupe:
    def __init__(self, target):
        self.target = target

    @classmethod
    def connect(cls, host: str = '127.0.0.1', port: int = DEFAULT_PORT,
                protocol: str = 'grpc') -> 'Loupe':
        jina_defaults()
        if protocol == 'grpc':
            return cls(GrpcGateway(host, port))
        from jina import Client

        return cls(Client(host=host, port=port, protocol=protocol))

    @classmethod
    @contextlib.contextmanager
    def local(cls, flow: str = 'serve', **kwargs) -> Iterator['Loupe']:
        """Start a flow in this process (``index``, ``query``, ``serve`` or a YAML path)."""
        if flow == 'serve':
            kwargs.setdefault('protocol', 'grpc')
        with load_flow(flow, **kwargs) as running:
            if str(running.protocol).lower().endswith('grpc'):  # gRPC alone: one open channel
                gateway = GrpcGateway('127.0.0.1', running.port)
                try:
                    yield cls(gateway)
                finally:
                    gateway.close()
            else:
                yield cls(running)

    def post(self, endpoint: str, docs, parameters: Optional[dict] = None) -> DocList[ImageDoc]:
        try:
            return self.target.post(endpoint, inputs=DocList[ImageDoc](docs),
                                    parameters=parameters or {}, return_type=DocList[ImageDoc])
        except LoupeError:
            raise
        except Exception as e:  # Jina re-raises executor errors as its own types
            raise LoupeError(f'{endpoint} failed: {e}') from e

    def exists(self, ids: Iterable[str]) -> set:
        docs = [ImageDoc(id=i) for i in ids]
        if not docs:
            return set()
        return {d.id for d in self.post('/exists', docs) if d.status == STATUS_INDEXED}

    def index(self, sources: Iterable[Source], tags: Optional[dict] = None, batch_size: int = 8,
              skip_existing: bool = True, parameters: Optional[dict] = None,
              progress: Optional[Callable[[int], None]] = None) -> IndexReport:
        """Index files, folders (recursively), URLs or bytes; bad items are reported, not fatal."""
        if batch_size <= 0:
            raise InvalidRequestError(f'batch_size must be > 0, got {batch_size}')
        report, seen, batch = IndexReport(), {}, []
        # Requests are pipelined: while the service encodes one batch, the next one is already
        # being read, checked, sent and partitioned, so the encoder never waits for a request.
        with ThreadPoolExecutor(max_workers=_IN_FLIGHT) as pool:
            sent: deque = deque()

            def send(batch):
                sent.append(pool.submit(self._send_batch, batch, skip_existing, parameters))
                if len(sent) >= _IN_FLIGHT:
                    _record(*sent.popleft().result(), report, progress)

            for source in expand(sources, report.errors):
                name = describe(source)
                try:
                    doc = to_doc(source, tags)
                except ImageLoadError as e:
                    report.errors.append(Problem(name, str(e)))
                    _tick(progress)
                    continue
                if doc.id in seen:
                    report.skipped.append(Problem(name, f'duplicate of {seen[doc.id]}'))
                    _tick(progress)
                    continue
                seen[doc.id] = name
                batch.append((name, doc))
                if len(batch) >= batch_size:
                    send(batch)
                    batch = []
            if batch:
                send(batch)
            while sent:
                _record(*sent.popleft().result(), report, progress)
        return report

    def _send_batch(self, batch, skip_existing, parameters):
        """(names by id, ids already indexed, the service's answer for the rest)."""
        names = {doc.id: name for name, doc in batch}
        existing = self.exists(names) if skip_existing else set()
        docs = [d for _, d in batch if d.id not in existing]
        return names, existing, self.post('/index', docs, parameters) if docs else []

    def search(self, text: Optional[str] = None, image: Optional[Source] = None,
               limit: Optional[int] = None, rerank: Optional[bool] = None,
               filter: Optional[dict] = None, **parameters) -> List[Result]:
        """Search by ``text`` or by an example ``image`` (path, URL or bytes)."""
        if image is not None:
            query = to_doc(image) if isinstance(image, bytes) or is_url(image) else to_doc(str(image))
            query = ImageDoc(blob=query.blob, uri=query.uri)
        elif text is not None and text.strip():
            query = ImageDoc(text=text)
        else:
            raise InvalidRequestError('empty query: give a text or an image')
        options = dict(parameters, limit=limit, rerank=rerank, filter=filter)
        options = {k: v for k, v in options.items() if v is not None}
        (doc,) = _check(self.post('/search', [query], options))
        return [Result(id=m.parent_id, uri=m.uri, score=m.score, highlight=m.highlight_box,
                       highlight_source=m.highlight_source, scores=dict(m.scores),
                       tags=dict(m.tags), width=m.width, height=m.height,
                       chunk_kind=m.chunk_kind, preview=m.preview) for m in doc.matches]

    def delete(self, ids: Iterable[str]) -> List[str]:
        """Remove images by id; returns the ids that were indexed."""
        docs = [ImageDoc(id=i) for i in ids]
        if not docs:
            return []
        return [d.id for d in self.post('/delete', docs) if d.status]


def _record(names, existing, answer, report: IndexReport, progress) -> None:
    for id_ in existing:
        report.skipped.append(Problem(names[id_], 'already indexed'))
    for doc in answer:
        if doc.status == STATUS_ERROR or doc.error:
            report.errors.append(Problem(names[doc.id], doc.error or 'not indexed'))
        else:
            report.indexed.append(names[doc.id])
            report.chunks += len(doc.chunks)
    _tick(progress, len(names))


def _tick(progress, n: int = 1) -> None:
    if progress and n:
        progress(n)
