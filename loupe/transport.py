"""Connections to a loupe gateway: one persistent gRPC channel, or HTTP with loupe's JSON.

``jina.Client.post`` opens a new channel and a new event loop for every call: 3-4 ms of each
request here, a tenth of a text search. ``GrpcGateway`` keeps one channel open and sends each
request as the gateway's unary ``process_single_data`` call, as Jina's own client does with
``stream=False``. ``HttpGateway`` speaks the gateway's JSON (loupe.httpjson: bytes as base64),
which Jina's HTTP client does not. Both send the API key when one is given.
"""
import json
import urllib.error
import urllib.request
from typing import Optional

from docarray import DocList

from loupe.errors import InvalidRequestError, LoupeError
from loupe.guard import API_KEY_HEADER

DEFAULT_TIMEOUT = 600.0  # seconds for one request: a batch of detector-partitioned photos on a CPU

# Keepalive pings find a dead connection (a gateway that vanished, a dropped NAT entry) in
# seconds instead of at the next request's deadline; within what Jina's gateway accepts (a ping
# every 5 s without data). Requests that never reached the gateway (UNAVAILABLE) are retried:
# every loupe endpoint is idempotent (ids are content hashes; indexing again replaces).
_OPTIONS = [
    ('grpc.max_send_message_length', -1),
    ('grpc.max_receive_message_length', -1),
    ('grpc.keepalive_time_ms', 10_000),
    ('grpc.keepalive_timeout_ms', 5_000),
    ('grpc.keepalive_permit_without_calls', 1),
    ('grpc.enable_retries', 1),
    ('grpc.service_config', json.dumps({'methodConfig': [{
        'name': [{}],
        'retryPolicy': {'maxAttempts': 3, 'initialBackoff': '0.2s', 'maxBackoff': '2s',
                        'backoffMultiplier': 2, 'retryableStatusCodes': ['UNAVAILABLE']}}]})),
]


class GrpcGateway:
    """``post`` like ``jina.Client.post`` (the subset loupe uses), on one open channel, with a
    deadline per request (``timeout`` seconds; None waits for ever)."""

    def __init__(self, host: str, port: int, api_key: Optional[str] = None,
                 timeout: Optional[float] = DEFAULT_TIMEOUT):
        import grpc
        from jina.proto import jina_pb2_grpc

        self.address, self.timeout = f'{host}:{port}', timeout
        self._channel = grpc.insecure_channel(self.address, options=_OPTIONS)
        self._stub = jina_pb2_grpc.JinaSingleDataRequestRPCStub(self._channel)
        self._metadata = ((API_KEY_HEADER, api_key),) if api_key else None

    def post(self, endpoint: str, inputs: DocList, parameters: Optional[dict] = None,
             return_type=DocList) -> DocList:
        import grpc
        from jina.proto import jina_pb2
        from jina.types.request.data import DataRequest

        request = DataRequest()
        request.header.exec_endpoint = endpoint
        request.data.docs = inputs
        if parameters:
            request.parameters = parameters
        try:
            response = self._stub.process_single_data(request, metadata=self._metadata,
                                                      timeout=self.timeout)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidRequestError(e.details()) from None
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise LoupeError(f'{endpoint}: no answer from {self.address} within '
                                 f'{self.timeout:g} s') from None
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                raise LoupeError(f'{endpoint}: cannot reach {self.address}: '
                                 f'{e.details()}') from None
            raise LoupeError(f'{endpoint} failed: {e.details() or e.code().name}') from None
        status = response.header.status
        if status.code >= jina_pb2.StatusProto.ERROR:
            raise LoupeError(f'{endpoint} failed: {status.description or status.exception.name}')
        response.document_array_cls = return_type
        return response.docs

    def close(self) -> None:
        self._channel.close()


class HttpGateway:
    """``post`` over the gateway's HTTP port, one request per call."""

    def __init__(self, host: str, port: int, api_key: Optional[str] = None, timeout: float = 600):
        self.url = f'http://{host}:{port}'
        self.headers = {'Content-Type': 'application/json'}
        if api_key:
            self.headers[API_KEY_HEADER] = api_key
        self.timeout = timeout

    def post(self, endpoint: str, inputs: DocList, parameters: Optional[dict] = None,
             return_type=DocList) -> DocList:
        from loupe.httpjson import parse_doc, to_jsonable

        body = {'data': [to_jsonable(doc.dict()) for doc in inputs],
                'parameters': parameters or {}}
        request = urllib.request.Request(self.url + endpoint, data=json.dumps(body).encode(),
                                         headers=self.headers, method='POST')
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as e:
            message = _error_message(e)
            raise (InvalidRequestError if 400 <= e.code < 500 else LoupeError)(
                f'{endpoint}: {message}') from None
        except (urllib.error.URLError, OSError) as e:
            raise LoupeError(f'{endpoint}: cannot reach {self.url}: {e}') from None
        return return_type([parse_doc(item, i) for i, item in enumerate(answer['data'])])

    def close(self) -> None:
        pass


def _error_message(error: 'urllib.error.HTTPError') -> str:
    try:
        return json.load(error).get('error') or f'HTTP {error.code}'
    except ValueError:
        return f'HTTP {error.code}'
