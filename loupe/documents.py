"""Small document helpers shared by executors."""
from typing import Optional

from docarray import DocList

from loupe.constants import STATUS_ERROR
from loupe.schema import ImageDoc


def mark_error(doc: ImageDoc, reason: str) -> None:
    """Record why ``doc`` failed to index; several stages may add reasons."""
    doc.error = f'{doc.error}; {reason}' if doc.error and reason not in doc.error else reason
    doc.status = STATUS_ERROR


def slim(docs: Optional[DocList[ImageDoc]]) -> Optional[DocList[ImageDoc]]:
    """Drop what the client sent or does not need back: image bytes and chunk vectors."""
    for doc in docs or ():
        doc.blob = None
        for chunk in doc.chunks:
            chunk.embedding = None
    return docs
