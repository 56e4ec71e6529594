"""What the gateway does to every request before an executor sees it, whatever the protocol.

Request-level caps are checked (too many documents is a clear error, never a silent cut); an
image too large is reported for that item; a document that names its image only by ``uri`` gets
the bytes here, where the operator allows that source (loupe.fetch), concurrently and within
one time box per request, on the gateway's event loop: nothing downstream ever reads a uri, so
a slow source cannot hold up the executors that every other client's requests pass through.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from loupe.config import GatewaySettings
from loupe.constants import STATUS_ERROR
from loupe.errors import ImageLoadError, InvalidRequestError
from loupe.fetch import SourcePolicy, fetch_all
from loupe.parameters import ENDPOINTS, check_count
from loupe.schema import ImageDoc
from loupe.sources import content_id

MAX_ID_BYTES = 256  # of a document id (LMDB keys hold at most 511 bytes)
_READS_IMAGES = ('/index', '/search')


@dataclass
class Intake:
    """The caps are loupe.parameters' (per endpoint); the operator may only lower them."""

    policy: SourcePolicy = field(default_factory=SourcePolicy)
    max_docs: Optional[int] = None
    max_blob_bytes: int = GatewaySettings().max_blob_bytes

    def check_count(self, endpoint: str, count: int) -> None:
        if endpoint in ENDPOINTS:
            check_count(endpoint, count)
        if self.max_docs is not None and count > self.max_docs:
            raise InvalidRequestError(f'{count} documents in one {endpoint} request; at most '
                                      f'{self.max_docs} here: send them in several requests')

    async def prepare(self, endpoint: str, docs: Sequence[ImageDoc],
                      anonymous: Optional[List[bool]] = None) -> None:
        """Check, fill in blobs, and give documents sent without an id their content's id."""
        self.check_count(endpoint, len(docs))
        if endpoint not in _READS_IMAGES:
            return
        for doc in docs:
            if doc.blob is not None and len(doc.blob) > self.max_blob_bytes:
                _fail(doc, f'image of {len(doc.blob):,} bytes; at most {self.max_blob_bytes:,}')
            if endpoint == '/index' and len(doc.id.encode()) > MAX_ID_BYTES:
                _fail(doc, f'id of {len(doc.id.encode())} bytes; at most {MAX_ID_BYTES}')
        wanted = [doc for doc in docs if doc.blob is None and doc.uri and not doc.error]
        results = await fetch_all([doc.uri for doc in wanted], self.policy)
        for doc, result in zip(wanted, results):
            if isinstance(result, ImageLoadError):
                _fail(doc, str(result))
            else:
                doc.blob = result
        for doc, without_id in zip(docs, anonymous or ()):
            if without_id and doc.blob:
                doc.id = content_id(doc.blob)


def to_undo(endpoint: str, sent: Sequence[str], answer: Sequence[ImageDoc]) -> List[str]:
    """Ids of images an /index request sent on (``sent``: clean at the gateway) that came back
    failed: some stage may have written part of them (chunks, or the parent), so the gateway
    deletes them at once and the image is all-or-nothing."""
    if endpoint != '/index':
        return []
    sent = set(sent)
    return [doc.id for doc in answer if doc.id in sent and doc.status == STATUS_ERROR]


def _fail(doc: ImageDoc, reason: str) -> None:
    doc.error = f'{doc.error}; {reason}' if doc.error else reason
    doc.status = STATUS_ERROR


def intake_from_settings(settings: GatewaySettings) -> Intake:
    """The gateway's settings, environment included (LOUPE_ALLOW_FOLDERS, LOUPE_ALLOW_URLS)."""
    policy = SourcePolicy.create(settings.allow_folders, settings.allow_urls,
                                 max_bytes=settings.max_blob_bytes,
                                 timeout=settings.fetch_timeout,
                                 concurrency=settings.fetch_concurrency)
    return Intake(policy=policy, max_docs=settings.max_docs,
                  max_blob_bytes=settings.max_blob_bytes)
