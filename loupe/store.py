"""Parent storage: the parent images (metadata and a preview JPEG) in LMDB, keyed by document id.

The preview (longest side <= ``preview_size``) lets the reranker and the result gallery work for
images sent as bytes or from URLs, and for files moved since, without keeping the originals.
LMDB serves readers in other processes (the reranker) while this one writes.
"""
import io
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional

import lmdb
from PIL import Image

from loupe.images import DecodedImage, content_hash, decode, image_size, preview_jpeg
from loupe.lmdb_env import GrowingEnv
from loupe.shard import readonly_store

_META, _PREVIEW = 'meta', 'preview'
_ORIENTATION = 0x0112  # EXIF tag
# pHash input: the decoder may reduce a JPEG until its shorter side is this (pHash itself
# works on 32x32), so hashing costs a cheap reduced decode.
PHASH_SIDE = 128


@dataclass
class StoredImage:
    id: str
    width: int  # original, EXIF orientation applied
    height: int
    content_hash: str
    preview: bytes = b''
    uri: Optional[str] = None  # the latest path or URL it was indexed under
    tags: Dict = field(default_factory=dict)
    uris: List[str] = field(default_factory=list)  # every path or URL it was indexed under
    phash: Optional[str] = None  # 64-bit perceptual hash, 16 hex digits (imagehash.phash)
    added: float = 0.0  # when the content was first stored (seconds since the epoch)

    def __post_init__(self):
        if self.uri and self.uri not in self.uris:
            self.uris = [*self.uris, self.uri]

    def metadata(self) -> dict:
        meta = asdict(self)
        del meta['preview']
        return meta

    @classmethod
    def from_metadata(cls, meta: bytes, preview: bytes = b'') -> 'StoredImage':
        return cls(preview=preview, **json.loads(meta))


class ParentStore:
    def __init__(self, path, readonly: bool = False, map_size: int = 64 << 20):
        self._env = GrowingEnv(path, dbs=(_META, _PREVIEW), map_size=map_size,
                               readonly=readonly)
        self.path = self._env.path

    def put(self, records: Iterable[StoredImage]) -> Dict[str, str]:
        """Store records: one write transaction when all can be written, else one per record.
        A record with an existing id replaces its preview and size, and is merged into its
        paths (``uris``) and tags (new values win). Returns why each record that could not be
        written was not (a full disk, say); every other record is stored."""
        records = list(records)
        if not records:
            return {}
        try:
            self._env.write(lambda txn: [self._put(txn, rec) for rec in records])
            return {}
        except lmdb.Error:
            pass
        failed = {}
        for rec in records:
            try:
                self._env.write(lambda txn, rec=rec: self._put(txn, rec))
            except lmdb.Error as e:
                failed[rec.id] = f'not stored: {e}'
        return failed

    def _put(self, txn, rec: StoredImage) -> None:
        dbs, key = self._env.dbs, rec.id.encode()
        old = txn.get(key, db=dbs[_META])
        meta = rec.metadata()
        if old is not None:
            old = json.loads(old)
            meta['tags'] = {**old.get('tags', {}), **meta['tags']}
            known = old.get('uris') or ([old['uri']] if old.get('uri') else [])
            meta['uris'] = list(dict.fromkeys([*known, *meta['uris']]))
            meta['added'] = old.get('added') or meta['added']  # first stored
        txn.put(key, json.dumps(meta).encode(), db=dbs[_META])
        txn.put(key, rec.preview, db=dbs[_PREVIEW])

    def get_many(self, ids: Iterable[str], preview: bool = True) -> Dict[str, StoredImage]:
        dbs = self._env.dbs

        def read(txn):
            found = {}
            for id_ in ids:
                meta = txn.get(id_.encode(), db=dbs[_META])
                if meta is None:
                    continue
                data = bytes(txn.get(id_.encode(), db=dbs[_PREVIEW]) or b'') if preview else b''
                found[id_] = StoredImage.from_metadata(meta, data)
            return found

        return self._env.read(read)

    def get(self, id_: str, preview: bool = True) -> Optional[StoredImage]:
        return self.get_many([id_], preview=preview).get(id_)

    def delete(self, ids: Iterable[str]) -> List[str]:
        """Remove records; returns the ids that existed."""
        dbs = self._env.dbs

        def write(txn):
            removed = []
            for id_ in ids:
                meta = txn.get(id_.encode(), db=dbs[_META])
                if meta is None:
                    continue
                txn.delete(id_.encode(), db=dbs[_META])
                txn.delete(id_.encode(), db=dbs[_PREVIEW])
                removed.append(id_)
            return removed

        return self._env.write(write)

    def update(self, changes: Dict[str, dict]) -> List[str]:
        """Change stored records without re-encoding anything; returns the ids found.

        Each change may hold ``tags`` (merged), ``untag`` (keys removed), ``add_uris`` and
        ``remove_uris`` (paths). A record left without any path keeps its last one: deleting
        an image is ``delete``'s job, decided by the caller.
        """
        dbs = self._env.dbs

        def write(txn):
            found = []
            for id_, change in changes.items():
                meta = txn.get(id_.encode(), db=dbs[_META])
                if meta is None:
                    continue
                meta = json.loads(meta)
                tags = {**meta.get('tags', {}), **change.get('tags', {})}
                meta['tags'] = {k: v for k, v in tags.items() if k not in change.get('untag', ())}
                uris = meta.get('uris') or ([meta['uri']] if meta.get('uri') else [])
                uris = [u for u in uris if u not in change.get('remove_uris', ())]
                uris = list(dict.fromkeys([*uris, *change.get('add_uris', ())]))
                if uris:
                    meta['uris'] = uris
                    if meta.get('uri') not in uris:
                        meta['uri'] = uris[-1]
                txn.put(id_.encode(), json.dumps(meta).encode(), db=dbs[_META])
                found.append(id_)
            return found

        return self._env.write(write)

    def records(self) -> Iterator[StoredImage]:
        """Every record (without previews), read in one transaction."""
        def read(txn):
            return [StoredImage.from_metadata(bytes(meta))
                    for _, meta in txn.cursor(db=self._env.dbs[_META])]

        return iter(self._env.read(read))

    def find_uris(self, uris: Iterable[str]) -> Dict[str, str]:
        """The id indexed under each of ``uris`` (any of its paths), where there is one.

        A scan: finding a path is a rare, interactive operation (delete or tag by a path that
        no longer exists), not worth an index kept on every write.
        """
        wanted, found = set(uris), {}
        for record in self.records():
            for uri in record.uris:
                if uri in wanted:
                    found[uri] = record.id
        return found

    def find_under(self, folders: Iterable[str]) -> List[StoredImage]:
        """Records with a path inside any of ``folders`` (a scan, as ``find_uris``)."""
        prefixes = tuple(f.rstrip('/') + '/' for f in folders)
        return [r for r in self.records() if any(u.startswith(prefixes) for u in r.uris)]

    def record_batches(self, batch: int = 1000):
        """Every record with its preview, in lists of up to ``batch`` (``loupe reshard``)."""
        dbs = self._env.dbs

        def keys(txn):
            with txn.cursor(db=dbs[_META]) as cur:
                return [bytes(k).decode() for k in cur.iternext(keys=True, values=False)]

        ids = self._env.read(keys)
        for start in range(0, len(ids), batch):
            yield list(self.get_many(ids[start:start + batch]).values())

    def __contains__(self, id_: str) -> bool:
        return self._env.read(lambda txn: txn.get(id_.encode(), db=self._env.dbs[_META])) is not None

    def __len__(self) -> int:
        return self._env.read(lambda txn: txn.stat(self._env.dbs[_META])['entries'])

    def close(self) -> None:
        self._env.close()


def build_record(id_: str, data: bytes, uri: Optional[str] = None, tags: Optional[dict] = None,
                 preview_size: int = 1024) -> StoredImage:
    """Decode ``data`` once (at reduced size where the format allows) into a record to store."""
    width, height = image_size(data)
    if _own_preview(data, preview_size):
        # The whole stream is still decoded (at reduced scale, cheaply): a broken file fails here.
        decoded = decode(data, min_side=PHASH_SIDE)
        preview = data
    else:
        # Ask the decoder for just enough pixels that the longest side still reaches preview_size.
        min_side = max(1, round(preview_size * min(width, height) / max(width, height)))
        decoded = decode(data, min_side=min_side)
        preview = preview_jpeg(decoded, preview_size)
    return StoredImage(id=id_, width=width, height=height, content_hash=content_hash(data),
                       preview=preview, uri=uri, tags=dict(tags or {}),
                       phash=perceptual_hash(decoded), added=time.time())


def perceptual_hash(decoded: DecodedImage) -> str:
    """imagehash's pHash (DCT of the 32x32 greyscale image, 64 bits) as 16 hex digits."""
    import imagehash  # scipy and PyWavelets: imported where images are stored, not read

    return str(imagehash.phash(decoded.image))


def _own_preview(data: bytes, preview_size: int) -> bool:
    """Whether ``data`` can be its own preview: a plain upright JPEG, small enough in pixels and
    bytes. That skips a decode and a re-encode per image (most of the cost of storing a
    photo of ~640 pixels) and keeps the original's quality."""
    with Image.open(io.BytesIO(data)) as img:
        return (img.format == 'JPEG' and img.mode in ('RGB', 'L')
                and max(img.size) <= preview_size and len(data) <= img.width * img.height
                and img.getexif().get(_ORIENTATION, 1) == 1)


class StoreReader:
    """The root store opened read-only on first use, from another process than its writer;
    None until it exists (a flow's first search may come before its first image)."""

    def __init__(self, path):
        self.path = path
        self._store: Optional[ParentStore] = None
        self._lock = threading.Lock()

    def get(self) -> Optional[ParentStore]:
        if self._store is None and self.path:
            with self._lock:
                if self._store is None:
                    try:
                        self._store = readonly_store(self.path)
                    except (FileNotFoundError, lmdb.Error):
                        return None
        return self._store

    def stored(self, ids: Iterable[str]) -> Optional[set]:
        """Which of ``ids`` have a parent record; None when there is no store to ask."""
        store = self.get()
        return None if store is None else set(store.get_many(ids, preview=False))

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
