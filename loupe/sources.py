"""Turning what a user points at (folders, files, URLs, bytes) into documents to index.

Ids are content hashes, so the same picture under two names is indexed once, and indexing it
again replaces it instead of adding a copy.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Union

from loupe.constants import IMAGE_EXTENSIONS
from loupe.errors import ImageLoadError
from loupe.images import content_hash, read_source
from loupe.schema import ImageDoc

Source = Union[str, Path, bytes]
ID_LENGTH = 32  # hex digits of the sha256 kept as the document id


@dataclass
class Problem:
    """An item that was not sent, and why."""

    source: str
    reason: str


def content_id(data: bytes) -> str:
    """The id of an image: its content's hash, so the same picture is indexed once."""
    return content_hash(data)[:ID_LENGTH]


def is_url(source) -> bool:
    return isinstance(source, str) and source.startswith(('http://', 'https://'))


def expand(sources: Iterable[Source], problems: List[Problem]) -> Iterator[Source]:
    """Folders become their image files (recursively, sorted); missing paths become problems."""
    for source in sources:
        if isinstance(source, bytes) or is_url(source):
            yield source
            continue
        path = Path(source).expanduser()
        if path.is_dir():
            yield from sorted(p for p in path.rglob('*')
                              if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            yield path
        else:
            problems.append(Problem(str(source), 'no such file or folder'))


def to_doc(source: Source, tags: Optional[dict] = None) -> ImageDoc:
    """Read the bytes on the client side, so a remote service needs no access to the files."""
    if isinstance(source, bytes):
        data, uri = source, None
    elif is_url(source):
        data, uri = read_source(source), source
    else:
        path = Path(source).resolve()
        data, uri = read_source(str(path)), str(path)
    if not data:
        raise ImageLoadError('empty file (0 bytes)')  # the report names the file
    digest = content_hash(data)
    return ImageDoc(id=digest[:ID_LENGTH], uri=uri, blob=data, content_hash=digest,
                    tags=dict(tags or {}))


def describe(source: Source) -> str:
    return f'<{len(source)} bytes>' if isinstance(source, bytes) else str(source)
