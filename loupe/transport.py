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

_UNLIMITED = [('grpc.max_send_message_length', -1), ('grpc.max_receive_message_length', -1)]


class GrpcGateway:
    """``post`` like ``jina.Client.post`` (the subset loupe uses), on one open channel."""

    def __init__(self, host: str, port: int, api_key: Optional[str] = None):
        import grpc
        from jina.proto import jina_pb2_grpc

        self._channel = grpc.insecure_channel(f'{host}:{port}', options=_UNLIMITED)
        self._stub = jina_pb2_grpc.JinaSingleDataRequestRPCStub(self._channel)
        self._metadata = ((API_KEY_HEADER, api_key),) if api_key else None

    def post(self, endpoint: str, inputs: DocList, parameters: Optional[dict] = None,
             return_type=DocList) -> DocList:
        from jina.proto import jina_pb2
        from jina.types.request.data import DataRequest

        request = DataRequest()
        request.header.exec_endpoint = endpoint
        request.data.docs = inputs
        if parameters:
            request.parameters = parameters
        import grpc

        try:
            response = self._stub.process_single_data(request, metadata=self._metadata)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidRequestError(e.details()) from None
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
