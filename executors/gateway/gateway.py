"""The loupe gateway: Jina's gRPC and HTTP servers with loupe's rules at the edge.

A custom Jina gateway (the flows name it in their ``gateway:`` section; its settings and their
defaults are ``loupe.config.GatewaySettings``). Like Jina's own composite gateway it serves each configured
protocol on its port; on top of that:

- an optional API key (``LOUPE_API_KEY`` or ``api_key``), checked on every gRPC call except the
  health check, and on every HTTP request except ``GET /`` and the static files;
- both protocols pass each request through ``loupe.intake`` (caps, reading allowed sources,
  content ids), so executors never read a uri;
- over HTTP, loupe's own routes for its endpoints: JSON only, no cross-site requests, bytes as
  base64 (loupe.httpjson), a request handled whole however many documents it has, client
  mistakes as 4xx with the message and never a traceback;
- the web page: the files of ``static_dir`` (default: ``loupe/static`` in the package), when it
  holds an ``index.html``, are served at ``/``.

The rules themselves are plain code in loupe.guard, loupe.intake, loupe.fetch and loupe.httpjson.
"""
import json
import re
from pathlib import Path
from typing import List, Optional

import grpc
from docarray import DocList
from jina.proto import jina_pb2
from jina.serve.runtimes.gateway.gateway import BaseGateway
from jina.serve.runtimes.gateway.grpc import GRPCGateway
from jina.serve.runtimes.gateway.http import HTTPGateway
from jina.serve.runtimes.gateway.request_handling import GatewayRequestHandler
from jina.serve.runtimes.servers.composite import CompositeBaseServer

import loupe
from loupe import guard
from loupe.config import GatewaySettings, build, names
from loupe.constants import ENDPOINTS
from loupe.errors import InvalidRequestError
from loupe.httpjson import parse_request, response_body
from loupe.intake import Intake, intake_from_settings, to_undo
from loupe.parameters import check_parameters
from loupe.schema import ImageDoc

STATIC_DIR = Path(loupe.__file__).resolve().parent / 'static'
# HTTP paths that answer with more than "alive": they need the key when one is set.
_API_PATHS = frozenset(ENDPOINTS) | {'/status', '/dry_run', '/docs', '/redoc', '/openapi.json',
                                     '/docs/oauth2-redirect'}
# Exceptions an executor raises for a client's mistake (loupe.errors and pydantic's).
_CLIENT_ERRORS = frozenset({'InvalidRequestError', 'DimensionMismatchError', 'ValueError',
                            'ValidationError', 'TypeError'})
_HEALTH_SERVICE = '/grpc.health.v1.Health/'


def skip_pattern(bypass: Optional[dict], endpoint: str, parameters: Optional[dict]):
    """Jina's ``target_executor`` (a regex of the executors a request visits) for a /search: every
    executor but those of ``bypass`` (``GatewaySettings.search_bypass``) that the request does not
    bring back with their parameter. None: visit them all."""
    if not bypass or endpoint != '/search':
        return None
    around = [re.escape(name) for name, parameter in bypass.items()
              if not _brings_back(parameter, parameters or {})]
    return f'^(?!(?:{"|".join(around)})$)' if around else None


def _brings_back(parameter: Optional[str], parameters: dict) -> bool:
    """The request turns ``parameter`` on, or gives it a value the executors will refuse (the
    executor is visited, so the error names it)."""
    if not parameter or parameter not in parameters:
        return False
    try:
        return bool(check_parameters('/search', {parameter: parameters[parameter]})[parameter])
    except InvalidRequestError:
        return True


class LoupeRequestHandler(GatewayRequestHandler):
    """Jina's request handler, with ``loupe.intake`` applied to every gRPC data request, and
    the parts of failed images undone after an /index."""

    intake: Intake = Intake()
    search_bypass: Optional[dict] = None

    async def _prepare(self, request) -> list:
        """Check and fill in the request; the ids it sends on to the executors clean."""
        request.document_array_cls = DocList[ImageDoc]
        docs = request.docs
        endpoint = request.header.exec_endpoint
        await self.intake.prepare(endpoint, docs)
        request.data.docs = docs
        skip = skip_pattern(self.search_bypass, endpoint, request.parameters)
        if skip and not request.header.target_executor:
            request.header.target_executor = skip
        return [doc.id for doc in docs if not doc.error]

    async def _finish(self, endpoint: str, sent: list, response) -> None:
        if endpoint != '/index':
            return
        if response.header.status.code == jina_pb2.StatusProto.ERROR:  # any of it may be written
            await undo(self.streamer, sent)
        else:
            response.document_array_cls = DocList[ImageDoc]
            await undo(self.streamer, to_undo(endpoint, sent, response.docs))

    async def process_single_data(self, request, context=None):
        endpoint = request.header.exec_endpoint
        try:
            sent = await self._prepare(request)
        except InvalidRequestError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        response = await super().process_single_data(request, context)
        await self._finish(endpoint, sent, response)
        return response

    async def stream(self, request_iterator, context=None, *args, **kwargs):
        pending = {}  # request id: (endpoint, ids sent on)

        async def prepared():
            async for request in request_iterator:
                try:
                    sent = await self._prepare(request)
                except InvalidRequestError as e:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
                pending[request.header.request_id] = (request.header.exec_endpoint, sent)
                yield request

        async for response in super().stream(prepared(), context, *args, **kwargs):
            endpoint, sent = pending.pop(response.header.request_id, ('', []))
            await self._finish(endpoint, sent, response)
            yield response

    Call = stream  # Jina's gRPC service calls it by this name


async def undo(streamer, ids) -> None:
    """Delete ``ids`` everywhere in the flow (their chunks and their parent records)."""
    if ids:
        async for _ in streamer.stream_docs(DocList[ImageDoc]([ImageDoc(id=i) for i in ids]),
                                            request_size=len(ids), exec_endpoint='/delete',
                                            return_type=DocList[ImageDoc]):
            pass


class _ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, key: str):
        self.key = key

    async def intercept_service(self, continuation, details):
        if details.method.startswith(_HEALTH_SERVICE) or guard.key_accepted(
                self.key, {k.lower(): v for k, v in details.invocation_metadata or ()}):
            return await continuation(details)
        return _refusal(await continuation(details))


def _refusal(handler):
    """A handler of the same kind (unary/stream) that refuses the call."""
    async def deny(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, 'a valid API key is required')

    async def deny_stream(request, context):
        await deny(request, context)
        yield  # pragma: no cover (abort raises)

    if handler is None:
        return None
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny_stream) if not handler.request_streaming \
            else grpc.stream_stream_rpc_method_handler(deny_stream)
    return grpc.unary_unary_rpc_method_handler(deny) if not handler.request_streaming \
        else grpc.stream_unary_rpc_method_handler(deny)


class _GrpcServer(GRPCGateway):
    def __init__(self, api_key: Optional[str] = None, **kwargs):
        self._api_key = api_key  # before super().__init__, which asks for the interceptors
        super().__init__(**kwargs)

    def aio_tracing_server_interceptors(self):
        interceptors = list(super().aio_tracing_server_interceptors() or ())
        if self._api_key:
            interceptors.insert(0, _ApiKeyInterceptor(self._api_key))
        return interceptors or None


class _HttpServer(HTTPGateway):
    def __init__(self, api_key: Optional[str] = None, intake: Intake = None,
                 search_bypass: Optional[dict] = None, allow_origins: List[str] = (),
                 static_dir: Optional[str] = None, **kwargs):
        self._api_key, self._intake = api_key, intake or Intake()
        self._search_bypass = search_bypass
        self._allow_origins = list(allow_origins or ())
        self._static_dir = Path(static_dir) if static_dir else STATIC_DIR
        super().__init__(**kwargs)

    @property
    def app(self):
        from fastapi import Request
        from fastapi.responses import JSONResponse

        app = super().app  # Jina's: /status, /dry_run, the API docs
        app.router.routes[:] = [r for r in app.router.routes
                                if getattr(r, 'path', None) not in ENDPOINTS]
        for endpoint in ENDPOINTS:
            app.add_api_route(endpoint, self._route(endpoint), methods=['POST'],
                              summary=f'loupe {endpoint}')

        @app.middleware('http')
        async def edge(request: Request, call_next):
            headers = {k.lower(): v for k, v in request.headers.items()}
            path = request.url.path
            protected = path in _API_PATHS or request.method not in ('GET', 'HEAD')
            if protected and not guard.key_accepted(self._api_key, headers):
                return JSONResponse({'error': 'a valid API key is required (header x-api-key '
                                              'or Authorization: Bearer KEY)'}, status_code=401)
            refusal = guard.cross_site_refusal(request.method, headers,
                                               headers.get('host', ''), self._allow_origins)
            if refusal:
                status = 415 if refusal.startswith('Content-Type') else 403
                return JSONResponse({'error': refusal}, status_code=status)
            try:
                return await call_next(request)
            except Exception as e:  # never a traceback to the client
                self.logger.error(f'{request.method} {path}: {e!r}')
                return JSONResponse({'error': f'internal error: {e}'}, status_code=500)

        if (self._static_dir / 'index.html').is_file():
            from fastapi.staticfiles import StaticFiles

            # Mounted last: the API routes above win; GET / (Jina's health check) is the page.
            app.mount('/', StaticFiles(directory=str(self._static_dir), html=True), name='web')
        return app

    def _route(self, endpoint: str):
        from fastapi import Request
        from fastapi.responses import JSONResponse

        async def post(request: Request):
            try:
                body = json.loads(await request.body() or b'null')
            except ValueError as e:
                return JSONResponse({'error': f'the body is not valid JSON: {e}'}, status_code=400)
            try:
                docs, anonymous, parameters = parse_request(body)
                await self._intake.prepare(endpoint, docs, anonymous)
            except InvalidRequestError as e:
                return JSONResponse({'error': str(e)}, status_code=400)
            sent = [doc.id for doc in docs if not doc.error]
            answer = DocList[ImageDoc]()
            # One request for all the documents: Jina's own route cuts at 100 by default.
            async for result, error in self.streamer.stream(
                    docs=DocList[ImageDoc](docs), request_size=max(1, len(docs)),
                    exec_endpoint=endpoint, parameters=parameters,
                    target_executor=skip_pattern(self._search_bypass, endpoint, parameters),
                    return_type=DocList[ImageDoc]):
                if error is not None:
                    if endpoint == '/index':  # any of it may be written
                        await undo(self.streamer, sent)
                    message = ', '.join(map(str, error.args)) or error.name
                    status = 400 if error.name in _CLIENT_ERRORS else 500
                    return JSONResponse({'error': message}, status_code=status)
                answer.extend(result)
            await undo(self.streamer, to_undo(endpoint, sent, answer))
            if endpoint == '/search':
                failed = [doc.error for doc in answer if doc.error]
                if failed:
                    return JSONResponse({'error': '; '.join(failed)}, status_code=400)
            return JSONResponse(response_body(answer, parameters))

        post.__name__ = f'loupe_{endpoint.strip("/")}'
        return post


class LoupeGateway(CompositeBaseServer, BaseGateway):
    """One server per configured protocol (gRPC, HTTP), sharing one request handler."""

    def __init__(self, **kwargs):
        settings = build(GatewaySettings, {k: kwargs.pop(k) for k in names(GatewaySettings)
                                           if k in kwargs})
        intake = intake_from_settings(settings)
        # The handler is built by Jina, in super().__init__.
        LoupeRequestHandler.intake = intake
        LoupeRequestHandler.search_bypass = settings.search_bypass
        if kwargs.get('req_handler_cls') in (None, GatewayRequestHandler):
            kwargs['req_handler_cls'] = LoupeRequestHandler
        super().__init__(**kwargs)
        key = guard.api_key(settings.api_key)
        self.servers = []
        # _server_kwargs: the hook Jina's CompositeBaseServer gives subclasses (one per port).
        for server_kwargs in self._server_kwargs:
            protocol = str(server_kwargs['runtime_args']['protocol']).lower()
            if protocol.endswith('grpc'):
                self.servers.append(_GrpcServer(api_key=key, **server_kwargs))
            elif protocol.endswith('http'):
                self.servers.append(_HttpServer(api_key=key, intake=intake,
                                                search_bypass=settings.search_bypass,
                                                allow_origins=settings.allow_origins,
                                                static_dir=settings.static_dir, **server_kwargs))
            else:
                raise ValueError(f'the loupe gateway serves grpc and http, not {protocol}')
        self.gateways = self.servers
        if key:
            self.logger.info('an API key is required on every call')

    @property
    def _should_exit(self) -> bool:
        # Jina's composite counts a gRPC server (it has no should_exit) as done: there it only
        # runs beside an HTTP one. Here it may serve alone; it ends when the runtime cancels.
        return all(getattr(server, 'should_exit', False) for server in self.servers)
