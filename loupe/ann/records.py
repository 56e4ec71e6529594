"""The chunk index's durable record: one LMDB environment (``meta/``) with three databases.

- ``chunks``: key (big-endian uint64) -> JSON header ``{p: parent id, b: box, k: kind,
  l: label}``, ``\\n``, the L2-normalised vector as little-endian float16;
- ``parents``: parent id (hashed when longer than LMDB allows) -> JSON ``{id, keys, tags}``;
- ``meta``: JSON values: ``settings``, ``ndim``, ``next_key``, ``generation`` (+1 for every
  committed write, whichever process made it).

Keys are taken from ``next_key`` inside the write transaction and never reused, so a key names
one immutable record: two equal key sets hold the same chunks.
"""
import errno
import json
import struct
from hashlib import sha256
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import lmdb
import numpy as np

from loupe.errors import StorageFullError
from loupe.lmdb_env import GrowingEnv

_META, _CHUNKS, _PARENTS = 'meta', 'chunks', 'parents'
_MAX_KEY = 480  # LMDB keys are at most 511 bytes; longer parent ids are hashed


class Added(NamedTuple):
    """The chunks one write stored, in key order: what the graph and the hit table need."""

    keys: np.ndarray  # uint64
    parent_ids: List[str]
    boxes: List[list]
    kinds: List[str]
    labels: List[Optional[str]]
    vectors: np.ndarray  # float32, L2-normalised


class Written(NamedTuple):
    removed: np.ndarray  # uint64 keys of replaced or deleted chunks
    added: Added
    generation_before: int  # the generation this write started from
    generation: int  # the generation it committed


def chunk_key(key: int) -> bytes:
    return struct.pack('>Q', key)


def parent_key(parent_id: str) -> bytes:
    raw = parent_id.encode()
    return raw if len(raw) <= _MAX_KEY else b'\0' + sha256(raw).digest()


def encode_chunk(parent_id: str, box, kind: str, label: Optional[str],
                 vector: np.ndarray) -> bytes:
    # json.dumps escapes newlines, so the first b'\n' ends the header.
    header = json.dumps({'p': parent_id, 'b': [float(x) for x in box], 'k': kind, 'l': label})
    return header.encode() + b'\n' + vector.astype('<f2').tobytes()


def decode_header(value) -> dict:
    value = bytes(value)
    return json.loads(value[:value.index(b'\n')])


def decode_vector(value) -> np.ndarray:
    value = bytes(value)
    return np.frombuffer(value, dtype='<f2', offset=value.index(b'\n') + 1).astype(np.float32)


def _empty_added(ndim: int) -> Added:
    return Added(np.zeros(0, np.uint64), [], [], [], [], np.zeros((0, ndim), np.float32))


class ChunkRecords:
    """Reads and all-or-nothing writes of the chunk records."""

    def __init__(self, path, map_size: int = 64 << 20):
        self.path = path
        self._env = GrowingEnv(path, dbs=(_META, _CHUNKS, _PARENTS), map_size=map_size)
        self._dbs = self._env.dbs

    def close(self) -> None:
        self._env.close()

    def read(self, fn):
        return self._env.read(fn)

    def _write(self, fn):
        try:
            return self._env.write(fn)
        except lmdb.Error as e:
            if 'No space left' in str(e) or getattr(e, 'errno', None) == errno.ENOSPC:
                raise StorageFullError(f'no space left on device for the chunk index at '
                                       f'{self.path}; nothing of this write was stored') from e
            raise

    # -- meta -------------------------------------------------------------------------------

    def meta(self, name: str, default=None, txn=None):
        get = lambda t: t.get(name.encode(), db=self._dbs[_META])  # noqa: E731
        value = get(txn) if txn is not None else self._env.read(get)
        return default if value is None else json.loads(value)

    def _put_meta(self, txn, **values) -> None:
        for name, value in values.items():
            txn.put(name.encode(), json.dumps(value).encode(), db=self._dbs[_META])

    def put_meta(self, **values) -> None:
        self._write(lambda txn: self._put_meta(txn, **values))

    def last_txnid(self) -> int:
        """LMDB's id of the last committed write, by any process: cheap, no transaction."""
        return self._env.env.info()['last_txnid']

    def generation(self, txn=None) -> int:
        return self.meta('generation', 0, txn)

    # -- writes -----------------------------------------------------------------------------

    def replace(self, items: Sequence[Tuple[str, list, dict, np.ndarray]],
                ndim: Optional[int]) -> Written:
        """Replace the chunks of each ``(parent_id, chunks, tags, vectors)`` in one transaction;
        a parent without chunks is removed."""
        def write(txn):
            before = self.generation(txn)
            next_key = self.meta('next_key', 0, txn)
            removed, added = [], {}
            for parent_id, chunks, tags, vectors in items:
                old = txn.get(parent_key(parent_id), db=self._dbs[_PARENTS])
                if old is not None:  # re-indexed: its tags merge, as in parent storage
                    tags = {**json.loads(old)['tags'], **tags}
                for key in self._drop_parent(txn, parent_id):
                    if added.pop(key, None) is None:
                        removed.append(key)
                if not chunks:
                    continue
                keys = list(range(next_key, next_key + len(chunks)))
                next_key += len(chunks)
                for key, chunk, vector in zip(keys, chunks, vectors):
                    txn.put(chunk_key(key), encode_chunk(parent_id, chunk.box, chunk.kind,
                                                         chunk.label, vector),
                            db=self._dbs[_CHUNKS])
                    added[key] = (parent_id, chunk, vector)
                record = {'id': parent_id, 'keys': keys, 'tags': tags}
                txn.put(parent_key(parent_id), json.dumps(record, default=str).encode(),
                        db=self._dbs[_PARENTS])
            self._put_meta(txn, next_key=next_key, ndim=ndim, generation=before + 1)
            return before, removed, added

        before, removed, added = self._write(write)
        if not added:
            out = _empty_added(ndim or 0)
        else:
            rows = list(added.values())
            out = Added(np.fromiter(added, np.uint64, len(added)), [r[0] for r in rows],
                        [[float(x) for x in r[1].box] for r in rows], [r[1].kind for r in rows],
                        [r[1].label for r in rows], np.stack([r[2] for r in rows]))
        return Written(np.asarray(removed, np.uint64), out, before, before + 1)

    def delete(self, parent_ids: Sequence[str]) -> Written:
        def write(txn):
            before = self.generation(txn)
            removed = [key for pid in parent_ids for key in self._drop_parent(txn, pid)]
            if removed:
                self._put_meta(txn, generation=before + 1)
            return before, removed

        before, removed = self._write(write)
        return Written(np.asarray(removed, np.uint64), _empty_added(0), before,
                       before + 1 if removed else before)

    def merge_tags(self, tags_by_parent: Dict[str, dict], remove: Sequence[str] = ()) -> List[str]:
        """Merge tags into the parents' records and drop the ``remove`` keys; returns the
        parents found. Chunks and vectors stay, so the graph and the hit table are unaffected."""
        def write(txn):
            found = []
            for parent_id, tags in tags_by_parent.items():
                value = txn.get(parent_key(parent_id), db=self._dbs[_PARENTS])
                if value is None:
                    continue
                record = json.loads(value)
                record['tags'] = {k: v for k, v in {**record['tags'], **tags}.items()
                                  if k not in remove}
                txn.put(parent_key(parent_id), json.dumps(record, default=str).encode(),
                        db=self._dbs[_PARENTS])
                found.append(parent_id)
            return found

        return self._write(write)

    def _drop_parent(self, txn, parent_id: str) -> List[int]:
        value = txn.get(parent_key(parent_id), db=self._dbs[_PARENTS])
        if value is None:
            return []
        keys = json.loads(value)['keys']
        for key in keys:
            txn.delete(chunk_key(key), db=self._dbs[_CHUNKS])
        txn.delete(parent_key(parent_id), db=self._dbs[_PARENTS])
        return keys

    # -- reads ------------------------------------------------------------------------------

    def keys(self, txn) -> np.ndarray:
        """Every chunk key, ascending (big-endian keys sort as numbers)."""
        with txn.cursor(db=self._dbs[_CHUNKS]) as cur:
            raw = b''.join(cur.iternext(keys=True, values=False))
        return np.frombuffer(raw, dtype='>u8').astype(np.uint64)

    def headers(self, txn, keys: Optional[Iterable[int]] = None) -> Iterator[Tuple[int, dict]]:
        """``(key, header)`` of every chunk, or of ``keys`` (missing ones skipped)."""
        db = self._dbs[_CHUNKS]
        if keys is None:
            with txn.cursor(db=db) as cur:
                for k, value in cur:
                    yield struct.unpack('>Q', k)[0], decode_header(value)
        else:
            for key in keys:
                value = txn.get(chunk_key(int(key)), db=db)
                if value is not None:
                    yield int(key), decode_header(value)

    def vectors(self, keys: Sequence[int], txn=None) -> np.ndarray:
        """Float32 vectors of ``keys`` (all present), one row each."""
        def read(t):
            db = self._dbs[_CHUNKS]
            return np.stack([decode_vector(t.get(chunk_key(int(k)), db=db)) for k in keys])

        return read(txn) if txn is not None else self._env.read(read)

    def tags(self, txn, parent_id: str) -> dict:
        value = txn.get(parent_key(parent_id), db=self._dbs[_PARENTS])
        return json.loads(value)['tags'] if value is not None else {}

    def parents(self, txn, parent_ids: Optional[Iterable[str]] = None) -> Iterator[dict]:
        """Parent records ``{id, keys, tags}``: all, or those of ``parent_ids`` that exist."""
        db = self._dbs[_PARENTS]
        if parent_ids is None:
            with txn.cursor(db=db) as cur:
                for value in cur.iternext(keys=False, values=True):
                    yield json.loads(value)
        else:
            for pid in parent_ids:
                value = txn.get(parent_key(pid), db=db)
                if value is not None:
                    yield json.loads(value)

    def known(self, parent_ids: Iterable[str]) -> set:
        ids = list(parent_ids)
        return self._env.read(lambda txn: {
            i for i in ids if txn.get(parent_key(i), db=self._dbs[_PARENTS]) is not None})

    def counts(self) -> Tuple[int, int]:
        """(chunks, parents)."""
        return self._env.read(lambda txn: (txn.stat(self._dbs[_CHUNKS])['entries'],
                                           txn.stat(self._dbs[_PARENTS])['entries']))
