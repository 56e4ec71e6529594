"""The Python client: index paths, URLs or bytes; search by text or image.

``Loupe`` wraps anything with Jina's ``post``: over gRPC, one persistent channel to the gateway
(loupe.transport) of a running service or of an in-process ``Flow``; over HTTP loupe's JSON
(loupe.transport), or the ``Flow`` itself. The same calls work against all of them.
"""
import contextlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence

from docarray import DocList

from loupe.constants import DEFAULT_PORT, STATUS_ERROR, STATUS_INDEXED
from loupe.errors import ImageLoadError, InvalidRequestError, LoupeError
from loupe.explore.client import ExploreMixin
from loupe.flows import jina_defaults, load_flow
from loupe.guard import api_key as configured_key
from loupe.results import Result, Results, page, result_from_match  # noqa: F401 (Result: API)
from loupe.query import IMAGE, TEXT, Term as QueryTerm, check_terms
from loupe.schema import ImageDoc, Match, Term
from loupe.sources import ID_LENGTH, Problem, Source, describe, expand, is_url, to_doc
from loupe.paths import workspace_root
from loupe.transport import DEFAULT_TIMEOUT, GrpcGateway, HttpGateway
from loupe.workspace import held

_IN_FLIGHT = 2  # index requests sent before the first answer is awaited


@dataclass
class IndexReport:
    indexed: List[str] = field(default_factory=list)  # sources now searchable
    skipped: List[Problem] = field(default_factory=list)  # already indexed, or duplicates
    errors: List[Problem] = field(default_factory=list)  # not indexed, with the reason
    chunks: int = 0
    tagged: int = 0  # images already indexed whose tags were merged with the given ones


def _check(response: DocList[ImageDoc]) -> DocList[ImageDoc]:
    for doc in response:
        if doc.error:
            raise InvalidRequestError(doc.error)
    return response


def split_address(host: str, port: Optional[int] = None) -> tuple:
    """``(host, port)`` from ``'host'``, ``'host:port'`` or ``'[ipv6]:port'``, and ``port``."""
    name, colon, tail = host.rpartition(':')
    if colon and tail.isdigit() and (':' not in name or name.startswith('[')):
        if port is not None and int(port) != int(tail):
            raise InvalidRequestError(f'two ports given: {host!r} and port={port}')
        host, port = name, int(tail)
    host = host or '127.0.0.1'
    port = DEFAULT_PORT if port is None else int(port)
    if not 0 < port < 65536:
        raise InvalidRequestError(f'port must be 1-65535, got {port}')
    return host, port


class Loupe(ExploreMixin):
    def __init__(self, target):
        self.target = target
        self.routed: Optional[str] = None  # the CLI: the service address it was sent to

    @classmethod
    def connect(cls, host: str = '127.0.0.1', port: Optional[int] = None,
                protocol: str = 'grpc', api_key: Optional[str] = None,
                timeout: Optional[float] = DEFAULT_TIMEOUT) -> 'Loupe':
        """A running service at ``host`` and ``port`` (or ``host`` as ``'host:port'``, as the
        CLI's ``--server`` takes it); ``api_key`` defaults to ``$LOUPE_API_KEY``; a request that
        gets no answer within ``timeout`` seconds is an error."""
        host, port = split_address(host, port)
        jina_defaults()
        key = api_key or configured_key()
        if protocol == 'grpc':
            return cls(GrpcGateway(host, port, api_key=key, timeout=timeout))
        if protocol == 'http':
            return cls(HttpGateway(host, port, api_key=key, timeout=timeout or 600))
        raise InvalidRequestError(f'protocol must be grpc or http, got {protocol!r}')

    @classmethod
    @contextlib.contextmanager
    def local(cls, flow: str = 'serve', **kwargs) -> Iterator['Loupe']:
        """Start a flow in this process (``index``, ``query``, ``serve`` or a YAML path).

        The process holds the workspace while the flow runs: a second writer (another flow, a
        ``loupe serve``) is refused with ``WorkspaceBusyError`` naming this one.
        """
        if flow == 'serve':
            kwargs.setdefault('protocol', 'grpc')
        with held(workspace_root()), load_flow(flow, **kwargs) as running:
            if str(running.protocol).lower().endswith('grpc'):  # gRPC alone: one open channel
                gateway = GrpcGateway('127.0.0.1', running.port, api_key=configured_key())
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
        report, seen, batch, duplicates = IndexReport(), {}, [], []
        # Requests are pipelined: while the service encodes one batch, the next one is already
        # being read, checked, sent and partitioned, so the encoder never waits for a request.
        with ThreadPoolExecutor(max_workers=_IN_FLIGHT) as pool:
            sent: deque = deque()

            def send(batch):
                sent.append(pool.submit(self._send_batch, batch, skip_existing, parameters))
                if len(sent) >= _IN_FLIGHT:
                    _record(*sent.popleft().result(), report, progress, tags)

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
                    if doc.uri:
                        duplicates.append(ImageDoc(id=doc.id, uri=doc.uri))
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
                _record(*sent.popleft().result(), report, progress, tags)
        self.update(duplicates)  # the image keeps every path it was found under
        return report

    def _send_batch(self, batch, skip_existing, parameters):
        """(names by id, ids already indexed, the service's answer for the rest).

        An image already indexed is not encoded again, but its path and the given tags are
        merged into its record.
        """
        names = {doc.id: name for name, doc in batch}
        existing = self.exists(names) if skip_existing else set()
        docs = [d for _, d in batch if d.id not in existing]
        self.update([ImageDoc(id=d.id, uri=d.uri, tags=d.tags) for _, d in batch
                     if d.id in existing and (d.uri or d.tags)])
        return names, existing, self.post('/index', docs, parameters) if docs else []

    def search(self, text: Optional[str] = None, image: Optional[Source] = None,
               limit: Optional[int] = None, rerank: Optional[bool] = None,
               filter: Optional[dict] = None, terms: Optional[Sequence[QueryTerm]] = None,
               offset: int = 0, min_score: Optional[float] = None,
               **parameters) -> Results:
        """Search by ``text``, an example ``image`` (path, URL or bytes), or both.

        ``terms`` is query arithmetic (loupe.query): ``[(1, 'text', 'a dog'), (-0.5, 'text',
        'night'), (1, 'image', 'beach.jpg')]``; ``text`` and ``image`` add terms of weight 1.
        ``offset`` skips that many results (paging); ``min_score`` drops weaker ones.
        """
        terms = list(terms or [])
        if text is not None and text.strip():
            terms.insert(0, (1.0, TEXT, text))
        elif text is not None:
            raise InvalidRequestError('empty query: give a text or an image')
        if image is not None:
            terms.append((1.0, IMAGE, image))
        check_terms(terms)
        if offset < 0:
            raise InvalidRequestError(f'offset must be >= 0, got {offset}')
        query = _query_doc(terms)
        options = dict(parameters, rerank=rerank, filter=filter)
        if limit is not None or offset:
            options['limit'] = (10 if limit is None else limit) + offset
        options = {k: v for k, v in options.items() if v is not None}
        (doc,) = _check(self.post('/search', [query], options))
        results = Results(result_from_match(m) for m in doc.matches)
        results.warning = doc.warning  # partial: a shard did not answer
        return page(results, offset, min_score)

    def delete(self, ids: Iterable[str]) -> List[str]:
        """Remove images by id; returns the ids that were indexed."""
        docs = [ImageDoc(id=i) for i in ids]
        if not docs:
            return []
        return [d.id for d in self.post('/delete', docs) if d.status]

    def delete_items(self, items: Iterable[Source]) -> 'DeleteReport':
        """Remove images named by file (its content), recorded path (a file gone since) or id."""
        report, ids = DeleteReport(), {}
        for item in items:
            try:
                ids.setdefault(self.resolve(item), []).append(describe(item))
            except LoupeError as e:
                report.not_deleted.append((describe(item), str(e)))
        removed = set(self.delete(list(ids)))
        for id_, names in ids.items():
            for name in names:
                if id_ in removed:
                    report.deleted.append(name)
                else:
                    report.not_deleted.append((name, 'not indexed'))
        return report

    def resolve(self, item: Source) -> str:
        """The image id of a file (by its content, else by the path it was indexed under: a
        file edited since), a recorded path or URL (a file gone since), or an id."""
        if isinstance(item, bytes):
            return to_doc(item).id
        text = str(item)
        path = Path(text).expanduser()
        if path.is_file():
            content_id = to_doc(str(path)).id
            if self.exists([content_id]):
                return content_id
            return self.find_uris([str(path.resolve())]).get(str(path.resolve()), content_id)
        uri = text if is_url(text) else str(path.resolve())
        found = self.find_uris([uri]).get(uri)
        if found:
            return found
        if _looks_like_id(text):
            return text
        raise InvalidRequestError('no such file, and no image was indexed under this path')

    def find_uris(self, uris: Iterable[str]) -> Dict[str, str]:
        """The id of the image indexed under each uri (path or URL), where there is one."""
        docs = [ImageDoc(uri=u) for u in uris]
        if not docs:
            return {}
        answer = self.post('/find', docs)
        return {d.uri: d.matches[0].parent_id for d in answer if d.matches}

    def find_under(self, folders: Iterable[str]) -> Dict[str, Match]:
        """Every indexed image with a path inside ``folders``, by id (``uris``: all its paths)."""
        docs = [ImageDoc(uri=f) for f in folders]
        found = {}
        for doc in self.post('/find', docs, {'under': True}) if docs else ():
            for match in doc.matches:
                found[match.parent_id] = match
        return found

    def tag(self, items: Iterable[Source], tags: Optional[dict] = None,
            untag: Iterable[str] = ()) -> List[str]:
        """Merge ``tags`` into indexed images (by id, file or recorded path) and remove the
        ``untag`` keys, without re-encoding; returns the ids changed."""
        ids = [self.resolve(item) for item in items]
        return self.update([ImageDoc(id=i, tags=dict(tags or {})) for i in ids], untag=untag)

    def update(self, docs: Sequence[ImageDoc], untag: Iterable[str] = (),
               remove_uris: Iterable[str] = ()) -> List[str]:
        """Change indexed images without re-encoding: each doc's ``tags`` are merged and its
        ``uri`` added to its paths; ``untag`` keys and ``remove_uris`` paths are removed.
        Returns the ids found."""
        if not docs:
            return []
        parameters = {'untag': list(untag), 'remove_uris': list(remove_uris)}
        answer = self.post('/update', docs, {k: v for k, v in parameters.items() if v})
        return [d.id for d in answer if d.status == STATUS_INDEXED]


@dataclass
class DeleteReport:
    deleted: List[str] = field(default_factory=list)
    not_deleted: List[tuple] = field(default_factory=list)  # (item, why)


def _looks_like_id(text: str) -> bool:
    return len(text) == ID_LENGTH and all(c in '0123456789abcdef' for c in text.lower())


def _query_doc(terms: Sequence[QueryTerm]) -> ImageDoc:
    """One text or one image of weight 1 travel as before; anything else as ``terms``."""
    def image_term(value) -> dict:
        if isinstance(value, bytes):
            return {'blob': value}
        doc = to_doc(value) if is_url(value) else to_doc(str(Path(str(value)).expanduser()))
        return {'blob': doc.blob, 'uri': doc.uri}

    if len(terms) == 1 and terms[0][0] == 1.0:
        _, kind, value = terms[0]
        return ImageDoc(text=value) if kind == TEXT else ImageDoc(**image_term(value))
    docs = [Term(text=value, weight=weight) if kind == TEXT
            else Term(weight=weight, **image_term(value)) for weight, kind, value in terms]
    first_text = next((v for w, k, v in terms if k == TEXT and w > 0), None)
    return ImageDoc(text=first_text, terms=DocList[Term](docs))  # text: what a reranker looks for


def _record(names, existing, answer, report: IndexReport, progress, tags=None) -> None:
    for id_ in existing:
        report.skipped.append(Problem(names[id_], 'already indexed'))
        report.tagged += bool(tags)
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
