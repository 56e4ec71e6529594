"""Root storage executor: keeps the parent images in LMDB and fills search results from them."""
from typing import Optional

from docarray import DocList
from jina import Executor, requests

from loupe.constants import STATUS_DELETED, STATUS_INDEXED, STATUS_MISSING
from loupe.docs import mark_error, slim
from loupe.errors import ImageLoadError, InvalidRequestError
from loupe.images import source_bytes
from loupe.schema import ImageDoc, Match
from loupe.settings import STORE_DIR, executor_workspace
from loupe.shard import Shard
from loupe.store import RootStore, build_record

def _strings(parameters: dict, name: str) -> list:
    value = parameters.get(name) or []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f'{name} must be a list of strings, got {value!r}')
    return list(value)


class RootStorage(Executor):
    def __init__(self, preview_size: int = 1024, path: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self.shard = Shard.of(self)  # a shard stores and fills only the images it owns
        self.preview_size = preview_size
        self.store = RootStore(path or executor_workspace(self) / STORE_DIR)

    @requests(on='/index')
    def index(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
              **kwargs) -> DocList[ImageDoc]:
        preview_size = int((parameters or {}).get('preview_size', self.preview_size))
        records = []
        for doc in docs or ():
            if doc.error or not self.shard.owns(doc.id):
                continue
            try:
                data = source_bytes(doc.blob, doc.uri)
                record = build_record(doc.id, data, doc.uri, doc.tags, preview_size)
            except ImageLoadError as e:
                mark_error(doc, str(e))
                continue
            doc.width, doc.height = record.width, record.height
            doc.content_hash = record.content_hash
            doc.status = STATUS_INDEXED
            records.append(record)
        failed = self.store.put(records)  # a full disk, say: reported per item
        for doc in docs or ():
            if doc.id in failed:
                mark_error(doc, failed[doc.id])
        self.logger.info(f'stored {len(records) - len(failed)} of {len(docs or ())} images')
        self.shard.stamp(docs)
        return slim(docs)

    @requests(on='/search')
    def search(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        with_preview = bool((parameters or {}).get('with_preview', False))
        for doc in docs or ():
            if not doc.matches:
                continue
            # A shard passes the other shards' results on; the merger keeps their owners'.
            mine = [m.parent_id for m in doc.matches if self.shard.owns(m.parent_id)]
            records = self.store.get_many(mine, preview=with_preview)
            kept = [m for m in doc.matches
                    if m.parent_id in records or not self.shard.owns(m.parent_id)]
            for match in (m for m in kept if m.parent_id in records):
                rec = records[match.parent_id]
                match.uri, match.uris, match.tags = rec.uri, rec.uris, rec.tags
                match.width, match.height = rec.width, rec.height
                match.preview = rec.preview or None
            doc.matches = DocList[Match](kept)
        self.shard.stamp(docs)
        return slim(docs)

    @requests(on='/delete')
    def delete(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        mine = self.shard.mine(docs)
        removed = set(self.store.delete([doc.id for doc in mine]))
        for doc in mine:
            doc.status = STATUS_DELETED if doc.id in removed else None
        self.shard.stamp(docs)
        return docs

    @requests(on='/find')
    def find(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
             **kwargs) -> DocList[ImageDoc]:
        """Which image each doc's ``uri`` (path or URL) was indexed under: one match, or none.

        With ``under: true`` each uri is a folder, and the matches are every image with a path
        inside it (``loupe sync``).
        """
        if (parameters or {}).get('under'):
            for doc in docs or ():
                doc.matches = DocList[Match](
                    Match(id=r.id, parent_id=r.id, uri=r.uri, uris=r.uris, tags=r.tags)
                    for r in self.store.find_under([doc.uri]) if doc.uri)
            self.shard.stamp(docs)  # each shard finds its own images; the merger joins them
            return docs
        found = self.store.find_uris(doc.uri for doc in docs or () if doc.uri)
        for doc in docs or ():
            image_id = found.get(doc.uri)
            doc.matches = DocList[Match]([Match(id=image_id, parent_id=image_id, uri=doc.uri)]
                                         if image_id else [])
        self.shard.stamp(docs)
        return docs

    @requests(on='/update')
    def update(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        """Tags merged, paths added or removed, nothing re-encoded (``loupe tag``, sync)."""
        parameters = parameters or {}
        untag, remove = _strings(parameters, 'untag'), _strings(parameters, 'remove_uris')
        mine = self.shard.mine(docs)
        found = set(self.store.update({
            doc.id: {'tags': dict(doc.tags), 'untag': untag, 'remove_uris': remove,
                     'add_uris': [doc.uri] if doc.uri else []} for doc in mine}))
        for doc in mine:
            doc.status = STATUS_INDEXED if doc.id in found else STATUS_MISSING
        self.shard.stamp(docs)
        return slim(docs)

    @requests(on='/exists')
    def exists(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        mine = self.shard.mine(docs)
        found = self.store.get_many([doc.id for doc in mine], preview=False)
        for doc in mine:
            if doc.status != STATUS_MISSING:  # the chunk indexer, earlier in a chain, may know
                doc.status = STATUS_INDEXED if doc.id in found else STATUS_MISSING
        self.shard.stamp(docs)
        return docs

    @requests
    def passthrough(self, docs: DocList[ImageDoc], **kwargs) -> DocList[ImageDoc]:
        return docs

    def close(self) -> None:
        self.store.close()
        super().close()
