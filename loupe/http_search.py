"""The CLI's fast way to search the workspace's own service: JSON over its HTTP port, with the
standard library alone.

The gRPC client needs jina and docarray, and docarray imports torch: 2-3 s before the first
byte is sent, far more than the search itself (one text encoding). Text queries (with their
weights) fit plain JSON; image terms and previews take the gRPC client.
"""
import json
import urllib.error
import urllib.request
from typing import List, Sequence

from loupe.errors import InvalidRequestError, LoupeError
from loupe.guard import API_KEY_HEADER, api_key
from loupe.query import TEXT, Term
from loupe.results import Result, Results, result_from_json


class Unavailable(Exception):
    """This way does not work here (no HTTP gateway, another shape): use the gRPC client."""


def applies(terms: Sequence[Term]) -> bool:
    return bool(terms) and all(kind == TEXT for _, kind, _ in terms)


def query_json(terms: Sequence[Term]) -> dict:
    if len(terms) == 1 and terms[0][0] == 1.0:
        return {'text': terms[0][2]}
    first = next((value for weight, _, value in terms if weight > 0), None)
    return {'text': first, 'terms': [{'text': value, 'weight': weight}
                                     for weight, _, value in terms]}


def search(host: str, port: int, terms: Sequence[Term], parameters: dict,
           timeout: float = 120) -> List[Result]:
    body = json.dumps({'data': [query_json(terms)], 'parameters': parameters}).encode()
    headers = {'Content-Type': 'application/json'}
    if api_key():
        headers[API_KEY_HEADER] = api_key()
    request = urllib.request.Request(f'http://{host}:{port}/search', data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as e:
        if 400 <= e.code < 500:
            detail = e.read().decode(errors='replace')
            try:
                answer = json.loads(detail)
                detail = answer.get('error') or answer.get('detail') or detail
            except (ValueError, AttributeError):
                pass
            raise InvalidRequestError(str(detail)) from None
        raise Unavailable(f'HTTP {e.code}') from e
    except (OSError, ValueError) as e:
        raise Unavailable(str(e)) from e
    status = (answer.get('header') or {}).get('status') or {}
    if status.get('code') not in (None, 0, 'SUCCESS'):
        raise LoupeError(f"/search failed: {status.get('description') or status}")
    try:
        (doc,) = answer['data']
    except (KeyError, TypeError, ValueError) as e:
        raise Unavailable(f'unexpected answer: {e}') from e
    if doc.get('error'):
        raise InvalidRequestError(doc['error'])
    results = Results(result_from_json(m) for m in doc.get('matches') or [])
    results.warning = doc.get('warning')  # partial: a shard did not answer
    return results
