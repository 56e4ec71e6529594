"""Parent storage executor: keeps the parent images in LMDB and fills search results from them."""
from typing import Optional

from docarray import DocList
from jina import requests

from loupe.base_executor import LoupeExecutor
from loupe.config import StorageSettings
from loupe.constants import STATUS_DELETED, STATUS_INDEXED, STATUS_MISSING
from loupe.documents import mark_error, slim
from loupe.errors import ImageLoadError
from loupe.explore import endpoints as explore
from loupe.images import source_bytes
from loupe.paths import STORE_DIR, executor_workspace
from loupe.schema import ImageDoc, Match
from loupe.shard import Shard
from loupe.store import ParentStore, build_record


class ParentStorage(LoupeExecutor):
    settings_class = StorageSettings

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.shard = Shard.of(self)  # a shard stores and fills only the images it owns
        self.store = self.own(ParentStore(self.settings.path
                                          or executor_workspace(self) / STORE_DIR))

    @requests(on='/index')
    def index(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
              **kwargs) -> DocList[ImageDoc]:
        checked = self.check_request('/index', docs, parameters)
        preview_size = checked.get('preview_size', self.settings.preview_size)
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
        return slim(self.shard.stamp('/index', docs))

    @requests(on='/search')
    def search(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        self._fill(docs, self.check_request('/search', docs, parameters).get('with_preview',
                                                                             False))
        return slim(self.shard.stamp('/search', docs))

    def _fill(self, docs: DocList[ImageDoc], with_preview: bool) -> None:
        """Each match gets its image's paths, tags and size; a match without a record goes.

        A shard fills the matches it owns and passes the others on; the merger keeps each
        match as its owner left it."""
        for doc in docs or ():
            if not doc.matches:
                continue
            records = self.store.get_many([m.parent_id for m in doc.matches
                                           if self.shard.owns(m.parent_id)], preview=with_preview)
            kept = [m for m in doc.matches
                    if m.parent_id in records or not self.shard.owns(m.parent_id)]
            for match in (m for m in kept if m.parent_id in records):
                rec = records[match.parent_id]
                match.uri, match.uris, match.tags = rec.uri, rec.uris, rec.tags
                match.width, match.height = rec.width, rec.height
                match.preview = rec.preview or None
            doc.matches = DocList[Match](kept)

    @requests(on='/recommend')
    def recommend(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
                  **kwargs) -> DocList[ImageDoc]:
        if self.shard.sharded:  # the chunk indexer's shards refused it already
            return explore.refuse_sharded('/recommend', docs, self.shard)
        self._fill(docs, self.check_request('/recommend', docs, parameters).get('with_preview',
                                                                                False))
        return slim(docs)

    @requests(on='/duplicates')
    def duplicates(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
                   **kwargs) -> DocList[ImageDoc]:
        if self.shard.sharded:  # the chunk indexer's shards refused it already
            return explore.refuse_sharded('/duplicates', docs, self.shard)
        return explore.duplicate_groups(self.store, docs, parameters)

    @requests(on='/map')
    def map(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
            **kwargs) -> DocList[ImageDoc]:
        if self.shard.sharded:  # the chunk indexer's shards refused it already
            return explore.refuse_sharded('/map', docs, self.shard)
        self.check_request('/map', docs, parameters)
        self._fill(docs, with_preview=True)
        return explore.thumbnails(docs, parameters)

    @requests(on='/delete')
    def delete(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        self.check_request('/delete', docs, parameters)
        mine = self.shard.mine(docs)
        removed = set(self.store.delete([doc.id for doc in mine]))
        for doc in mine:
            doc.status = STATUS_DELETED if doc.id in removed else None
        return self.shard.stamp('/delete', docs)

    @requests(on='/find')
    def find(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
             **kwargs) -> DocList[ImageDoc]:
        """Which image each doc's ``uri`` (path or URL) was indexed under: one match, or none.

        With ``under: true`` each uri is a folder, and the matches are every image with a path
        inside it (``loupe sync``).
        """
        if self.check_request('/find', docs, parameters).get('under'):
            for doc in docs or ():
                doc.matches = DocList[Match](
                    Match(id=r.id, parent_id=r.id, uri=r.uri, uris=r.uris, tags=r.tags)
                    for r in self.store.find_under([doc.uri]) if doc.uri)
            return self.shard.stamp('/find', docs)  # each shard its own; the merger joins them
        found = self.store.find_uris(doc.uri for doc in docs or () if doc.uri)
        for doc in docs or ():
            image_id = found.get(doc.uri)
            doc.matches = DocList[Match]([Match(id=image_id, parent_id=image_id, uri=doc.uri)]
                                         if image_id else [])
        return self.shard.stamp('/find', docs)

    @requests(on='/update')
    def update(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        """Tags merged, paths added or removed, nothing re-encoded (``loupe tag``, sync)."""
        checked = self.check_request('/update', docs, parameters)
        untag, remove = checked.get('untag', []), checked.get('remove_uris', [])
        mine = self.shard.mine(docs)
        found = set(self.store.update({
            doc.id: {'tags': dict(doc.tags), 'untag': untag, 'remove_uris': remove,
                     'add_uris': [doc.uri] if doc.uri else []} for doc in mine}))
        for doc in mine:
            doc.status = STATUS_INDEXED if doc.id in found else STATUS_MISSING
        return slim(self.shard.stamp('/update', docs))

    @requests(on='/exists')
    def exists(self, docs: DocList[ImageDoc], parameters: Optional[dict] = None,
               **kwargs) -> DocList[ImageDoc]:
        self.check_request('/exists', docs, parameters)
        mine = self.shard.mine(docs)
        found = self.store.get_many([doc.id for doc in mine], preview=False)
        for doc in mine:
            if doc.status != STATUS_MISSING:  # the chunk indexer, earlier in a chain, may know
                doc.status = STATUS_INDEXED if doc.id in found else STATUS_MISSING
        return self.shard.stamp('/exists', docs)
