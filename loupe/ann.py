"""Persistent approximate-nearest-neighbour index of chunk embeddings (cosine similarity).

Two stores in one folder:

- ``chunks.usearch``: the usearch HNSW graph, saved lazily (on ``save``/``close`` and every
  ``save_every`` added chunks), written to a temporary file and renamed, so a crash never
  leaves a torn file behind;
- ``meta/``: LMDB, the durable record. Per chunk key (uint64): parent id, box, kind, label and
  the L2-normalised vector as float16. Per parent: its chunk keys and tags. Plus the index
  settings, the dimension and a write generation.

Every write commits to LMDB first and then updates the graph. The generation at the last graph
save is recorded; when it differs on open (a crash, or an unsaved graph), the graph is
reconciled with LMDB: stale keys are removed and missing chunks re-added from their stored
vectors. The same path rebuilds the graph with new settings (``rebuild=True``).

Similarities are ``1 - cosine distance`` from the graph, except for ``i8`` graphs, whose
quantised distances are too coarse to rank close neighbours: there 4k candidates are re-scored
with the float16 vectors from LMDB.

One lock serialises searches and mutations: usearch may reallocate its storage while adding,
and LMDB's map can only be resized with no transaction open.
"""
import json
import logging
import os
import struct
import threading
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from usearch.index import BatchMatches, Index

from loupe.constants import KIND_WHOLE
from loupe.errors import DimensionMismatchError, InvalidRequestError
from loupe.lmdb_env import GrowingEnv
from loupe.models import choose

logger = logging.getLogger(__name__)

# Precision of the vectors inside the graph (the LMDB copy is always float16).
PRECISIONS = {'f32': 'f32', 'f16': 'f16', 'i8': 'i8'}
STRUCTURAL = ('precision', 'connectivity', 'expansion_add')  # changing these needs a rebuild
# expansion_search 256: recall@10 0.985 at 1M chunk vectors for ~0.8 ms a query (bench/ann.py);
# 64 recalled only 0.87 there.
DEFAULTS = {'precision': 'f16', 'connectivity': 16, 'expansion_add': 128, 'expansion_search': 256}

GRAPH_FILE = 'chunks.usearch'
_META, _CHUNKS, _PARENTS = 'meta', 'chunks', 'parents'
_FILTER_GROWTH = 4  # over-fetch factor per round when a filter rejects hits
# Over-fetch factor for graphs re-scored from LMDB (i8 alone recalled 0.75-0.95 at k=10 on
# clustered data, 0.99 re-scored).
_RESCORE = {'i8': 4}
_MAX_KEY = 480  # LMDB keys are at most 511 bytes; longer parent ids are hashed
_ADD_BATCH = 65536


@dataclass(frozen=True)
class ChunkHit:
    parent_id: str
    box: List[float]
    kind: str
    label: Optional[str]
    similarity: float  # cosine similarity in [-1, 1]


def _chunk_key(key: int) -> bytes:
    return struct.pack('>Q', key)


def _parent_key(parent_id: str) -> bytes:
    raw = parent_id.encode()
    return raw if len(raw) <= _MAX_KEY else b'\0' + sha256(raw).digest()


def _encode_chunk(parent_id: str, chunk, vector: np.ndarray) -> bytes:
    # json.dumps escapes newlines, so the first b'\n' ends the header.
    header = json.dumps({'p': parent_id, 'b': [float(x) for x in chunk.box],
                         'k': chunk.kind, 'l': chunk.label})
    return header.encode() + b'\n' + vector.astype('<f2').tobytes()


def _decode_chunk(value: bytes, vector: bool = True) -> Tuple[dict, Optional[np.ndarray]]:
    """(header, vector); without ``vector`` the vector is left undecoded (None)."""
    header, _, data = bytes(value).partition(b'\n')
    return json.loads(header), (np.frombuffer(data, dtype='<f2').astype(np.float32)
                                if vector else None)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def _accepts(tags: dict, filter: dict) -> bool:
    """Every filter tag must be present with an accepted value (a list lists several).

    A list-valued tag passes when any of its values is accepted.
    """
    for name, wanted in filter.items():
        if name not in tags:
            return False
        accepted = wanted if isinstance(wanted, (list, tuple, set, frozenset)) else (wanted,)
        have = tags[name] if isinstance(tags[name], list) else (tags[name],)
        if not any(value in accepted for value in have):
            return False
    return True


class ChunkIndex:
    """Chunk vectors of many parent images; replace, delete and search them by parent."""

    def __init__(self, path, precision: Optional[str] = None, connectivity: Optional[int] = None,
                 expansion_add: Optional[int] = None, expansion_search: Optional[int] = None,
                 save_every: Optional[int] = 10_000, rebuild: bool = False,
                 map_size: int = 64 << 20):
        """Settings left as None keep the persisted value, else take ``DEFAULTS``.

        Persisted structural settings (precision, connectivity, expansion_add) win over given
        ones unless ``rebuild``; ``expansion_search`` only affects queries, so a given value is
        applied (and persisted) without a rebuild.
        """
        if precision is not None:
            choose(PRECISIONS, precision, 'precision')
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.save_every = save_every
        self._lock = threading.RLock()
        self._env = GrowingEnv(self.path / 'meta', dbs=(_META, _CHUNKS, _PARENTS),
                               map_size=map_size)
        self._dbs = self._env.dbs
        given = {'precision': precision, 'connectivity': connectivity,
                 'expansion_add': expansion_add, 'expansion_search': expansion_search}
        self.settings = self._resolve_settings(given, rebuild)
        self.ndim: Optional[int] = self._meta('ndim')
        self._index: Optional[Index] = None
        self._unsaved = 0
        if self.ndim is not None:
            self._open_graph(rebuild)

    # -- settings and graph file ------------------------------------------------------------

    def _meta(self, name: str, default=None, txn=None):
        get = lambda t: t.get(name.encode(), db=self._dbs[_META])  # noqa: E731
        value = get(txn) if txn is not None else self._env.read(get)
        return default if value is None else json.loads(value)

    def _put_meta(self, txn, **values) -> None:
        for name, value in values.items():
            txn.put(name.encode(), json.dumps(value).encode(), db=self._dbs[_META])

    def _resolve_settings(self, given: dict, rebuild: bool) -> dict:
        stored = self._meta('settings')
        settings = {**DEFAULTS, **(stored or {})}
        if stored and not rebuild:
            changed = [name for name in STRUCTURAL
                       if given[name] is not None and given[name] != stored[name]]
            if changed:
                logger.warning(
                    'index at %s keeps its persisted %s; open it with rebuild=True to apply %s',
                    self.path, {n: stored[n] for n in changed}, {n: given[n] for n in changed})
        settings.update({n: v for n, v in given.items()
                         if v is not None and (n == 'expansion_search' or not stored or rebuild)})
        if settings != stored:
            self._env.write(lambda txn: self._put_meta(txn, settings=settings))
        return settings

    def _graph_path(self) -> Path:
        return self.path / GRAPH_FILE

    def _new_graph(self) -> Index:
        s = self.settings
        return Index(ndim=self.ndim, metric='cos', dtype=PRECISIONS[s['precision']],
                     connectivity=s['connectivity'], expansion_add=s['expansion_add'],
                     expansion_search=s['expansion_search'])

    def _open_graph(self, rebuild: bool) -> None:
        self._index = self._new_graph()
        loaded = False
        if self._graph_path().exists() and not rebuild:
            try:
                self._index.load(str(self._graph_path()))
                loaded = self._index.ndim == self.ndim
            except (RuntimeError, ValueError) as e:
                logger.warning('cannot load %s (%s); rebuilding it from LMDB',
                               self._graph_path(), e)
            if not loaded:
                self._index = self._new_graph()
        self._index.expansion_search = self.settings['expansion_search']
        generation, saved = self._meta('generation', 0), self._meta('saved_generation')
        if not loaded or saved != generation:
            self._reconcile()
            self.save()

    def _reconcile(self) -> None:
        """Make the graph hold exactly the chunks in LMDB."""
        def stored_keys(txn):
            with txn.cursor(db=self._dbs[_CHUNKS]) as cur:
                return {struct.unpack('>Q', k)[0] for k in cur.iternext(keys=True, values=False)}

        in_lmdb = self._env.read(stored_keys)
        in_graph = set(self._index.keys[:].tolist()) if len(self._index) else set()
        stale = np.fromiter(in_graph - in_lmdb, dtype=np.uint64)
        if len(stale):
            self._index.remove(stale)
        missing = sorted(in_lmdb - in_graph)
        for start in range(0, len(missing), _ADD_BATCH):
            keys = missing[start:start + _ADD_BATCH]
            vectors = self._env.read(lambda txn: np.stack(
                [_decode_chunk(txn.get(_chunk_key(k), db=self._dbs[_CHUNKS]))[1] for k in keys]))
            self._index.add(np.asarray(keys, dtype=np.uint64), vectors)
        if len(stale) or missing:
            logger.info('index at %s: re-added %d chunks from LMDB, removed %d stale ones',
                        self.path, len(missing), len(stale))

    def save(self) -> None:
        """Write the graph (atomically) and record which LMDB generation it reflects."""
        with self._lock:
            if self._index is None:
                return
            tmp = self._graph_path().with_suffix('.tmp')
            self._index.save(str(tmp))
            os.replace(tmp, self._graph_path())
            generation = self._meta('generation', 0)
            self._env.write(lambda txn: self._put_meta(txn, saved_generation=generation))
            self._unsaved = 0

    def close(self) -> None:
        with self._lock:
            if self._env is None:
                return
            if self._unsaved or self._meta('saved_generation') != self._meta('generation', 0):
                self.save()
            self._env.close()
            self._env = None

    def __enter__(self) -> 'ChunkIndex':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writes -----------------------------------------------------------------------------

    def _check_ndim(self, ndim: int, what: str, expected: Optional[int] = None) -> None:
        expected = expected or self.ndim
        if expected is not None and ndim != expected:
            raise DimensionMismatchError(
                f'{what} has {ndim} dimensions but the chunk index at {self.path} expects '
                f'{expected}; a different model needs its own workspace (or delete the index '
                f'and re-index)')

    @staticmethod
    def _vectors(parent_id: str, chunks: Sequence) -> np.ndarray:
        rows = []
        for i, chunk in enumerate(chunks):
            if chunk.embedding is None:
                raise ValueError(f'chunk {i} of {parent_id!r} has no embedding')
            rows.append(np.asarray(chunk.embedding, dtype=np.float32).ravel())
        sizes = sorted({row.size for row in rows})
        if len(sizes) > 1:
            raise DimensionMismatchError(
                f'chunks of {parent_id!r} have embeddings of different sizes: {sizes}')
        vectors = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
        if not np.isfinite(vectors).all() or (np.linalg.norm(vectors, axis=1) == 0).any():
            raise ValueError(f'{parent_id!r} has a zero or non-finite chunk embedding')
        return _normalise(vectors)

    def upsert(self, parent_id: str, chunks: Sequence, tags: Optional[dict] = None) -> int:
        """Replace the chunks of ``parent_id``; each chunk has box, kind, label, embedding."""
        return self.upsert_many([(parent_id, chunks, tags)])

    def upsert_many(self, items: Iterable[Tuple[str, Sequence, Optional[dict]]]) -> int:
        """Replace the chunks of several parents in one LMDB transaction; returns chunks stored.

        A parent given without chunks is removed. Nothing is written when any item is invalid.
        """
        prepared = [(pid, list(chunks or ()), dict(tags or {}), self._vectors(pid, chunks or ()))
                    for pid, chunks, tags in items or ()]
        if not prepared:
            return 0
        sizes = [vecs.shape[1] for *_, vecs in prepared if len(vecs)]
        with self._lock:
            ndim = self.ndim or (sizes[0] if sizes else None)
            for size in sizes:
                self._check_ndim(size, 'chunk embedding', ndim)

            def write(txn):
                next_key = self._meta('next_key', 0, txn)
                removed, added = [], {}
                for parent_id, chunks, tags, vectors in prepared:
                    for key in self._drop_parent(txn, parent_id):
                        if added.pop(key, None) is None:
                            removed.append(key)
                    if not chunks:
                        continue
                    keys = list(range(next_key, next_key + len(chunks)))
                    next_key += len(chunks)
                    for key, chunk, vector in zip(keys, chunks, vectors):
                        txn.put(_chunk_key(key), _encode_chunk(parent_id, chunk, vector),
                                db=self._dbs[_CHUNKS])
                        added[key] = vector
                    record = {'id': parent_id, 'keys': keys, 'tags': tags}
                    txn.put(_parent_key(parent_id), json.dumps(record, default=str).encode(),
                            db=self._dbs[_PARENTS])
                self._put_meta(txn, next_key=next_key, ndim=ndim,
                               generation=self._meta('generation', 0, txn) + 1)
                return removed, added

            removed, added = self._env.write(write)
            if self._index is None and ndim is not None:
                self.ndim = ndim
                self._index = self._new_graph()
            self._apply(removed, added)
        return len(added)

    def delete(self, parent_ids: Optional[Iterable[str]]) -> int:
        """Remove the chunks of these parents; returns how many chunks were removed."""
        parent_ids = list(parent_ids or ())
        if not parent_ids:
            return 0
        with self._lock:
            def write(txn):
                removed = [key for pid in parent_ids for key in self._drop_parent(txn, pid)]
                if removed:
                    self._put_meta(txn, generation=self._meta('generation', 0, txn) + 1)
                return removed

            removed = self._env.write(write)
            self._apply(removed, {})
        return len(removed)

    def merge_tags(self, tags_by_parent: Dict[str, dict], remove: Sequence[str] = ()) -> List[str]:
        """Merge tags into indexed parents' (what filters see) and drop the ``remove`` keys;
        vectors stay. Returns the parents found."""
        with self._lock:
            def write(txn):
                found = []
                for parent_id, tags in tags_by_parent.items():
                    value = txn.get(_parent_key(parent_id), db=self._dbs[_PARENTS])
                    if value is None:
                        continue
                    record = json.loads(value)
                    merged = {k: v for k, v in {**record['tags'], **tags}.items()
                              if k not in remove}
                    record['tags'] = merged
                    txn.put(_parent_key(parent_id), json.dumps(record, default=str).encode(),
                            db=self._dbs[_PARENTS])
                    found.append(parent_id)
                return found

            return self._env.write(write)

    def _drop_parent(self, txn, parent_id: str) -> List[int]:
        value = txn.get(_parent_key(parent_id), db=self._dbs[_PARENTS])
        if value is None:
            return []
        keys = json.loads(value)['keys']
        for key in keys:
            txn.delete(_chunk_key(key), db=self._dbs[_CHUNKS])
        txn.delete(_parent_key(parent_id), db=self._dbs[_PARENTS])
        return keys

    def _apply(self, removed: List[int], added: Dict[int, np.ndarray]) -> None:
        """Mirror a committed LMDB write in the graph."""
        if removed:
            self._index.remove(np.asarray(removed, dtype=np.uint64))
        if added:
            self._index.add(np.fromiter(added, dtype=np.uint64, count=len(added)),
                            np.stack(list(added.values())))
            self._unsaved += len(added)
        if self.save_every and self._unsaved >= self.save_every:
            self.save()

    # -- reads ------------------------------------------------------------------------------

    def search(self, queries, k: int = 10, filter: Optional[dict] = None,
               kinds: Optional[Iterable[str]] = None) -> List[List[ChunkHit]]:
        """Top ``k`` chunks per query row, most similar first.

        ``kinds`` keeps only chunks of those kinds (``('whole',)``: see ``nearest_whole``) and is
        searched deeper like a filter. With a ``filter`` (tag -> value, or tag -> list of accepted values) the graph is asked
        for ``4k`` candidates, then 4x more each round, until ``k`` of them pass the filter or
        the whole index has been fetched. Any round that asks for the whole index is an exact
        (brute-force) search, so a small index or a rare tag value never misses a chunk.
        A zero query vector gets no hits.
        """
        if queries is None:
            return []
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None] if queries.size else queries.reshape(0, 0)
        if not len(queries):
            return []
        if k <= 0:
            raise InvalidRequestError(f'k must be > 0, got {k}')
        if filter is not None and not isinstance(filter, dict):
            raise InvalidRequestError(f'filter must be a dict of tag -> value(s), got {filter!r}')
        kinds = frozenset(kinds) if kinds is not None else None
        with self._lock:
            self._check_ndim(queries.shape[1], 'query embedding')
            results: List[List[ChunkHit]] = [[] for _ in queries]
            size = len(self._index) if self._index is not None else 0
            queries = _normalise(queries)
            pending = [i for i in range(len(queries)) if queries[i].any()]
            if not size:
                return results
            return self._env.read(lambda txn: self._search(txn, queries, pending, k, filter,
                                                           kinds, size, results))

    def _search(self, txn, queries, pending, k, filter, kinds, size, results):
        records, tags = {}, {}
        rescore = _RESCORE.get(self.settings['precision'], 1)
        wanted = k * rescore
        fetch = wanted * _FILTER_GROWTH if filter or kinds else wanted
        while pending:
            count = min(fetch, size)
            exhaustive = count >= size  # asked for everything: exact, never a missed chunk
            found = self._index.search(queries[pending], count, exact=exhaustive)
            if not isinstance(found, BatchMatches):
                found = [found]
            still = []
            for row, matches in zip(pending, found):
                hits = []
                for key, distance in zip(matches.keys.tolist(), matches.distances.tolist()):
                    if key not in records:
                        value = txn.get(_chunk_key(key), db=self._dbs[_CHUNKS])
                        records[key] = (None if value is None
                                        else _decode_chunk(value, vector=rescore > 1))
                    if records[key] is None:
                        continue
                    record, vector = records[key]
                    if kinds is not None and record['k'] not in kinds:
                        continue
                    if filter and not _accepts(self._tags(txn, record['p'], tags), filter):
                        continue
                    similarity = float(queries[row] @ vector) if rescore > 1 else 1.0 - distance
                    hits.append(ChunkHit(record['p'], record['b'], record['k'], record['l'],
                                         min(1.0, max(-1.0, float(similarity)))))
                    if len(hits) == wanted:
                        break
                if rescore > 1:
                    hits.sort(key=lambda hit: -hit.similarity)
                results[row] = hits[:k]
                if len(hits) < wanted and count < size:
                    still.append(row)
            pending = still
            fetch *= _FILTER_GROWTH
        return results

    def _tags(self, txn, parent_id: str, cache: dict) -> dict:
        if parent_id not in cache:
            value = txn.get(_parent_key(parent_id), db=self._dbs[_PARENTS])
            cache[parent_id] = json.loads(value)['tags'] if value is not None else {}
        return cache[parent_id]

    def nearest_whole(self, queries, k: int = 10) -> List[List[ChunkHit]]:
        """The ``k`` images whose whole-image vector (kind 'whole') is most similar to each
        query row, best first: kNN over whole-image vectors only (recommendations, semantic
        duplicates), one graph search per query, never all pairs. Hits are ``ChunkHit``s
        (``parent_id``, ``similarity``, ...); an image itself is among its own neighbours.
        """
        return self.search(queries, k, kinds=(KIND_WHOLE,))

    def whole_vectors(self, parent_ids: Optional[Iterable[str]] = None
                      ) -> Tuple[List[str], np.ndarray]:
        """``(ids, vectors)``: the whole-image vector (kind 'whole', L2-normalised, float32, one
        row per id in ``ids``' order) of every indexed image, or of those of ``parent_ids`` that
        are indexed (unknown ids, and images without a whole chunk, are left out).

        Vectors come from the durable float16 copy, so they are the same for every precision.
        """
        wanted = None if parent_ids is None else list(dict.fromkeys(parent_ids))

        def read(txn):
            chunks = self._dbs[_CHUNKS]
            if wanted is None:
                with txn.cursor(db=self._dbs[_PARENTS]) as cur:
                    records = [json.loads(v) for v in cur.iternext(keys=False, values=True)]
            else:
                records = [json.loads(v) for v in (
                    txn.get(_parent_key(i), db=self._dbs[_PARENTS]) for i in wanted)
                    if v is not None]
            ids, rows = [], []
            for record in records:
                for key in record['keys']:  # the segmenter puts the whole image first
                    header, vector = _decode_chunk(txn.get(_chunk_key(key), db=chunks))
                    if header['k'] == KIND_WHOLE:
                        ids.append(record['id'])
                        rows.append(vector)
                        break
            return ids, rows

        with self._lock:
            ids, rows = self._env.read(read)
            ndim = self.ndim or 0
        return ids, (_normalise(np.stack(rows)) if rows else np.zeros((0, ndim), np.float32))

    def parent_records(self, batch: int = 1000):
        """Every parent, in batches: lists of ``(parent_id, tags, [(chunk header, vector)])``,
        the header a dict of box ``b``, kind ``k``, label ``l``; the vector the stored float16
        one. For copying an index elsewhere without re-encoding (``loupe reshard``)."""
        def keys(txn):
            with txn.cursor(db=self._dbs[_PARENTS]) as cur:
                return [bytes(k) for k in cur.iternext(keys=True, values=False)]

        def read(txn, chunk):
            out = []
            for key in chunk:
                record = json.loads(txn.get(key, db=self._dbs[_PARENTS]))
                out.append((record['id'], record['tags'], [
                    _decode_chunk(txn.get(_chunk_key(k), db=self._dbs[_CHUNKS]))
                    for k in record['keys']]))
            return out

        with self._lock:
            parent_keys = self._env.read(keys)
        for start in range(0, len(parent_keys), batch):
            with self._lock:
                yield self._env.read(lambda txn: read(txn, parent_keys[start:start + batch]))

    def known_parents(self, parent_ids: Iterable[str]) -> set:
        """The ids among ``parent_ids`` that have chunks in the index."""
        ids = list(parent_ids)
        with self._lock:
            return self._env.read(lambda txn: {
                i for i in ids if txn.get(_parent_key(i), db=self._dbs[_PARENTS]) is not None})

    def __len__(self) -> int:
        with self._lock:
            return self._env.read(lambda txn: txn.stat(self._dbs[_CHUNKS])['entries'])

    def stats(self) -> dict:
        with self._lock:
            counts = self._env.read(lambda txn: (txn.stat(self._dbs[_CHUNKS])['entries'],
                                                 txn.stat(self._dbs[_PARENTS])['entries']))
            return {'path': str(self.path), 'chunks': counts[0], 'parents': counts[1],
                    'ndim': self.ndim,
                    'memory_bytes': self._index.memory_usage if self._index is not None else 0,
                    **self.settings}
