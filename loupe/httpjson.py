"""loupe's documents as JSON over HTTP: bytes (``blob``, ``preview``) travel as base64.

Jina's own HTTP gateway reads a JSON string into ``bytes`` as UTF-8 text (so an image cannot be
sent) and writes ``bytes`` back the same way (so a JPEG preview fails); this codec is what the
loupe gateway and the loupe HTTP client speak instead. The body keeps Jina's shape:
``{"data": [doc, ...], "parameters": {...}}``.
"""
import base64
import binascii
from typing import Any, List, Tuple

import numpy as np
from pydantic import ValidationError

from loupe.errors import InvalidRequestError
from loupe.schema import ImageDoc

_BYTES_FIELDS = ('blob',)  # of an ImageDoc
_MATCH_BYTES_FIELDS = ('preview',)  # of each of its matches


def parse_request(body: Any) -> Tuple[List[ImageDoc], List[bool], dict]:
    """(documents, whether each came without an id, parameters) from a decoded JSON body."""
    if not isinstance(body, dict) or 'data' not in body:
        raise InvalidRequestError('the body must be a JSON object with "data": [documents]')
    items = body['data']
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidRequestError('"data" must be a document (a JSON object) or a list of them')
    parameters = body.get('parameters') or {}
    if not isinstance(parameters, dict):
        raise InvalidRequestError('"parameters" must be a JSON object')
    docs, anonymous = [], []
    for position, item in enumerate(items):
        docs.append(parse_doc(item, position))
        anonymous.append(not item.get('id'))
    return docs, anonymous, parameters


def _decode_bytes(values: dict, names, position: int) -> dict:
    values = dict(values)
    for name in names:
        value = values.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidRequestError(f'document {position}: {name} must be a base64 string')
        try:
            values[name] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError(f'document {position}: {name} is not valid base64') from None
    return values


def parse_doc(item: dict, position: int = 0) -> ImageDoc:
    values = _decode_bytes(item, _BYTES_FIELDS, position)
    if isinstance(values.get('matches'), list):
        values['matches'] = [_decode_bytes(m, _MATCH_BYTES_FIELDS, position)
                             if isinstance(m, dict) else m for m in values['matches']]
    if not values.get('id'):
        values.pop('id', None)
    try:
        return ImageDoc.parse_obj(values)
    except ValidationError as e:
        problems = '; '.join(f'{".".join(map(str, err["loc"]))}: {err["msg"]}'
                             for err in e.errors())
        raise InvalidRequestError(f'document {position}: {problems}') from None


def to_jsonable(value: Any) -> Any:
    """Plain JSON values: bytes as base64, arrays as lists."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode('ascii')
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, 'unwrap'):  # docarray's NdArray
        return np.asarray(value.unwrap()).tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def response_body(docs, parameters: dict = None) -> dict:
    return {'data': [to_jsonable(doc.dict()) for doc in docs],
            'parameters': to_jsonable(parameters or {})}
