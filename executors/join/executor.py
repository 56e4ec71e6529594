"""Joins the two branches of the index flow into one report per image.

The branches answer with the same document ids: parent storage (status, size, content hash) and
segmenter -> encoder -> indexer (chunks). docarray v2 cannot reduce nested DocLists of equal ids,
so this executor takes ``no_reduce: true`` and merges ``docs_matrix`` by id itself; the order of
the branches in it is not stable, so nothing here depends on it.
"""
from typing import List, Optional

from docarray import DocList
from jina import Executor, requests

from loupe.constants import (ENDPOINTS, STATUS_DELETED, STATUS_ERROR, STATUS_INDEXED,
                             STATUS_MISSING)
from loupe.documents import slim
from loupe.schema import ImageDoc


# When the branches disagree, the worse news wins: an image is indexed only if both say so.
_RANK = {None: 0, STATUS_DELETED: 1, STATUS_INDEXED: 2, STATUS_MISSING: 3, STATUS_ERROR: 4}


def merge_branches(docs_matrix: List[DocList[ImageDoc]]) -> DocList[ImageDoc]:
    merged = {}
    for branch in docs_matrix:
        for doc in branch:
            base = merged.setdefault(doc.id, doc)
            if base is doc:
                continue
            if len(doc.chunks) > len(base.chunks):
                base.chunks = doc.chunks
            if len(doc.matches) > len(base.matches):  # /find: root storage's answer
                base.matches = doc.matches
            for name in ('uri', 'width', 'height', 'content_hash'):
                if getattr(base, name) is None:
                    setattr(base, name, getattr(doc, name))
            for name in ('error', 'warning'):  # a warning: a shard did not answer (loupe.shard)
                said = [e for e in (getattr(base, name), getattr(doc, name)) if e]
                setattr(base, name, '; '.join(dict.fromkeys(said)) or None)
            base.status = max(base.status, doc.status, key=lambda status: _RANK.get(status, 0))
    for doc in merged.values():
        if doc.error:
            doc.status = STATUS_ERROR
    return DocList[ImageDoc](merged.values())


class Join(Executor):
    # Named, not a default handler: the gateway derives each endpoint's schema along every path
    # and needs this leaf to declare the endpoints the segmenter branch lacks (/exists).
    @requests(on=ENDPOINTS)
    def join(self, docs: DocList[ImageDoc], docs_matrix: Optional[List[DocList[ImageDoc]]] = None,
             **kwargs) -> DocList[ImageDoc]:
        return slim(merge_branches(docs_matrix) if docs_matrix else docs)
