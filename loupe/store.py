"""Root storage: the parent images (metadata and a preview JPEG) in LMDB, keyed by document id.

The preview (longest side <= ``preview_size``) lets the reranker and the result gallery work for
images sent as bytes or from URLs, and for files moved since, without keeping the originals.
LMDB serves readers in other processes (the reranker) while this one writes.
"""
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional

from PIL import Image

from loupe.images import content_hash, decode, image_size, preview_jpeg
from loupe.lmdb_env import GrowingEnv

_META, _PREVIEW, _HASH = 'meta', 'preview', 'hash'
_ORIENTATION = 0x0112  # EXIF tag


@dataclass
class StoredImage:
    id: str
    width: int  # original, EXIF orientation applied
    height: int
    content_hash: str
    preview: bytes = b''
    uri: Optional[str] = None
    tags: Dict = field(default_factory=dict)

    def metadata(self) -> dict:
        meta = asdict(self)
        del meta['preview']
        return meta


class RootStore:
    def __init__(self, path, readonly: bool = False, map_size: int = 64 << 20):
        self._env = GrowingEnv(path, dbs=(_META, _PREVIEW, _HASH), map_size=map_size,
                               readonly=readonly)
        self.path = self._env.path

    def put(self, records: Iterable[StoredImage]) -> None:
        """Store records in one write transaction; a record with an existing id replaces it."""
        records = list(records)
        if not records:
            return
        dbs = self._env.dbs

        def write(txn):
            for rec in records:
                key = rec.id.encode()
                old = txn.get(key, db=dbs[_META])
                if old is not None:
                    txn.delete(json.loads(old)['content_hash'].encode(), db=dbs[_HASH])
                txn.put(key, json.dumps(rec.metadata()).encode(), db=dbs[_META])
                txn.put(key, rec.preview, db=dbs[_PREVIEW])
                txn.put(rec.content_hash.encode(), key, db=dbs[_HASH])

        self._env.write(write)

    def get_many(self, ids: Iterable[str], preview: bool = True) -> Dict[str, StoredImage]:
        dbs = self._env.dbs

        def read(txn):
            found = {}
            for id_ in ids:
                meta = txn.get(id_.encode(), db=dbs[_META])
                if meta is None:
                    continue
                data = bytes(txn.get(id_.encode(), db=dbs[_PREVIEW]) or b'') if preview else b''
                found[id_] = StoredImage(preview=data, **json.loads(meta))
            return found

        return self._env.read(read)

    def get(self, id_: str, preview: bool = True) -> Optional[StoredImage]:
        return self.get_many([id_], preview=preview).get(id_)

    def find_hash(self, content_hash: str) -> Optional[str]:
        """The id stored with this content, if any."""
        key = self._env.read(lambda txn: txn.get(content_hash.encode(), db=self._env.dbs[_HASH]))
        return bytes(key).decode() if key is not None else None

    def delete(self, ids: Iterable[str]) -> List[str]:
        """Remove records; returns the ids that existed."""
        dbs = self._env.dbs

        def write(txn):
            removed = []
            for id_ in ids:
                meta = txn.get(id_.encode(), db=dbs[_META])
                if meta is None:
                    continue
                txn.delete(json.loads(meta)['content_hash'].encode(), db=dbs[_HASH])
                txn.delete(id_.encode(), db=dbs[_META])
                txn.delete(id_.encode(), db=dbs[_PREVIEW])
                removed.append(id_)
            return removed

        return self._env.write(write)

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
        # The whole stream is still decoded (at 1/8 scale, cheaply): a broken file fails here.
        decode(data, min_side=1)
        preview = data
    else:
        # Ask the decoder for just enough pixels that the longest side still reaches preview_size.
        min_side = max(1, round(preview_size * min(width, height) / max(width, height)))
        preview = preview_jpeg(decode(data, min_side=min_side), preview_size)
    return StoredImage(id=id_, width=width, height=height, content_hash=content_hash(data),
                       preview=preview, uri=uri, tags=dict(tags or {}))


def _own_preview(data: bytes, preview_size: int) -> bool:
    """Whether ``data`` can be its own preview: a plain upright JPEG, small enough in pixels and
    bytes. That skips a decode and a re-encode per image (most of the cost of storing a
    photo of ~640 pixels) and keeps the original's quality."""
    with Image.open(io.BytesIO(data)) as img:
        return (img.format == 'JPEG' and img.mode in ('RGB', 'L')
                and max(img.size) <= preview_size and len(data) <= img.width * img.height
                and img.getexif().get(_ORIENTATION, 1) == 1)
