"""Who may call the service, and how: the API key and the checks against cross-site requests.

Plain functions over header values, so that the gRPC and HTTP servers of the gateway apply the
same rules (and tests check them without a server).
"""
import hmac
import os
from typing import Iterable, Mapping, Optional
from urllib.parse import urlsplit

ENV_API_KEY = 'LOUPE_API_KEY'
API_KEY_HEADER = 'x-api-key'  # or ``Authorization: Bearer KEY``
STATE_CHANGING = frozenset({'POST', 'PUT', 'PATCH', 'DELETE'})


def api_key(configured: Optional[str] = None) -> Optional[str]:
    """The key callers must present: the environment's, else the configured one; None: open."""
    return os.environ.get(ENV_API_KEY) or configured or None


def presented_key(headers: Mapping[str, str]) -> Optional[str]:
    """The key a caller sent, from ``x-api-key`` or ``authorization: Bearer``; names lower-case."""
    key = headers.get(API_KEY_HEADER)
    if key:
        return key.strip()
    scheme, _, value = (headers.get('authorization') or '').partition(' ')
    return value.strip() if scheme.lower() == 'bearer' and value.strip() else None


def key_accepted(expected: Optional[str], headers: Mapping[str, str]) -> bool:
    if not expected:
        return True
    given = presented_key(headers)
    # compare_digest: the time taken does not tell how much of a guess was right.
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def cross_site_refusal(method: str, headers: Mapping[str, str], host: str,
                       allowed_origins: Iterable[str] = ()) -> Optional[str]:
    """Why a state-changing HTTP request is refused (None: accepted).

    A page on another site can make a browser send a "simple" POST (a Blob body without a
    type, or text/plain) with no preflight. Requiring ``application/json`` forces the preflight,
    which this service never grants; an ``Origin`` (or ``Sec-Fetch-Site``) naming another site
    is refused outright. Clients that are not browsers send neither header.
    """
    if method.upper() not in STATE_CHANGING:
        return None
    content_type = (headers.get('content-type') or '').split(';')[0].strip().lower()
    if content_type != 'application/json':
        return (f'Content-Type must be application/json, got {content_type or "none"!r}')
    origin = headers.get('origin')
    if origin and origin != 'null':
        if origin in set(allowed_origins) or same_origin(origin, host):
            return None
        return f'cross-origin request from {origin} refused'
    if origin == 'null' or headers.get('sec-fetch-site') == 'cross-site':
        return 'cross-origin request refused'
    return None


def same_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` (scheme://host[:port]) names the ``Host`` the request was sent to."""
    try:
        sent, target = urlsplit(origin), urlsplit(f'//{host}')
        if sent.scheme not in ('http', 'https') or not sent.hostname:
            return False
        default = 443 if sent.scheme == 'https' else 80
        return (sent.hostname, sent.port or default) == (target.hostname, target.port or default)
    except ValueError:  # a malformed port
        return False
