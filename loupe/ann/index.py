"""``ChunkIndex``: persistent nearest-neighbour search over the chunk vectors of many images.

In one folder: ``meta/``, the LMDB record (records.py) that every write commits to first, and
``chunks.usearch``, the HNSW graph (graph.py), a cache of the record. In memory beside the
graph, a table of what a hit needs (table.py), rebuilt from the record on open.

The graph always holds exactly the record's keys: on open they are compared key by key and the
graph repaired (a crash before the save, another process's writes); while open, a write this
process did not make (the record's generation moved without it) is caught up on before the
next search or write. Nothing trusts a counter that someone else may have advanced.

On a full disk, searches go on, opening works (a graph save that fails is logged and retried at
the next save), and a write raises ``StorageFullError`` having stored nothing.

One lock serialises searches and changes: usearch may reallocate its storage while adding,
and LMDB's map can only be resized with no transaction open.
"""
import logging
import threading
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from loupe.ann import search as policy
from loupe.ann.graph import Graph
from loupe.ann.records import Added, ChunkRecords, Written
from loupe.ann.settings import check_precision, resolve
from loupe.ann.table import ChunkHits, HitTable
from loupe.constants import KIND_WHOLE
from loupe.errors import DimensionMismatchError, InvalidRequestError, StorageFullError

logger = logging.getLogger(__name__)
_TABLE_BATCH = 65536


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def _table_columns(batch) -> tuple:
    keys = np.fromiter((k for k, _ in batch), np.uint64, len(batch))
    return (keys, [h['p'] for _, h in batch], [h['b'] for _, h in batch],
            [h['k'] for _, h in batch], [h['l'] for _, h in batch])


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
        check_precision(precision)
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.save_every = save_every
        self._lock = threading.RLock()
        self._records = ChunkRecords(self.path / 'meta', map_size=map_size)
        given = {'precision': precision, 'connectivity': connectivity,
                 'expansion_add': expansion_add, 'expansion_search': expansion_search}
        stored = self._records.meta('settings')
        self.settings = resolve(stored, given, rebuild, self.path)
        if self.settings != stored:
            try:
                self._records.put_meta(settings=self.settings)
            except StorageFullError as e:  # the settings apply to this run all the same
                logger.warning('%s: settings not persisted', e)
        self.ndim: Optional[int] = self._records.meta('ndim')
        self._graph: Optional[Graph] = None
        self._table = HitTable()
        self._generation = self._records.generation()
        self._txnid = None  # LMDB's last write id when the generation was last compared
        self._unsaved = 0  # graph changes since the file was last written
        if self.ndim is not None:
            self._open_graph(rebuild)

    # -- the graph and the record in step --------------------------------------------------

    def _open_graph(self, rebuild: bool) -> None:
        self._graph = Graph(self.path, self.ndim, self.settings)
        loaded = not rebuild and self._graph.load()

        def read(txn):
            table, batch = HitTable(), []
            for item in self._records.headers(txn):
                batch.append(item)
                if len(batch) == _TABLE_BATCH:
                    table.add(*_table_columns(batch))
                    batch = []
            table.add(*_table_columns(batch))
            return self._records.generation(txn), table

        self._generation, self._table = self._records.read(read)
        added, removed = self._graph.reconcile(self._table.keys(), self._records.vectors)
        if added or removed:
            logger.info('index at %s: re-added %d chunks from LMDB, removed %d stale ones',
                        self.path, added, removed)
        self._unsaved = added + removed + (0 if loaded else len(self._graph))
        if self._unsaved:
            self.save()

    def _catch_up(self) -> None:
        """Apply the record's changes that another process made since this one last looked."""
        txnid = self._records.last_txnid()  # before the read: a write in between shows next time
        if txnid == self._txnid:
            return

        def read(txn):
            generation = self._records.generation(txn)
            if generation == self._generation:
                return generation, None
            stored, have = self._records.keys(txn), self._table.keys()
            new = np.setdiff1d(stored, have, assume_unique=True)
            gone = np.setdiff1d(have, stored, assume_unique=True)
            headers = list(self._records.headers(txn, new.tolist()))
            vectors = self._records.vectors(new, txn) if len(new) else None
            return generation, (new, gone, headers, vectors)

        generation, change = self._records.read(read)
        if change is not None:
            new, gone, headers, vectors = change
            if self._graph is None and len(new):
                self.ndim = vectors.shape[1]
                self._graph = Graph(self.path, self.ndim, self.settings)
            self._table.remove(gone)
            if self._graph is not None:
                self._graph.remove(gone)
            if len(new):
                self._table.add(*_table_columns(headers))
                self._graph.add(new, vectors)
            self._unsaved += len(new) + len(gone)
            logger.info('index at %s: applied another process\'s writes (%d chunks added, %d '
                        'removed)', self.path, len(new), len(gone))
        self._generation, self._txnid = generation, txnid

    def _apply(self, written: Written) -> None:
        """Mirror a committed write of this process in the table and the graph."""
        foreign = written.generation_before != self._generation
        added: Added = written.added
        self._table.remove(written.removed)
        self._graph.remove(written.removed)
        self._table.add(added.keys, added.parent_ids, added.boxes, added.kinds, added.labels)
        self._graph.add(added.keys, added.vectors)
        self._unsaved += len(added.keys) + len(written.removed)
        self._generation = written.generation
        if foreign:
            self._generation = self._txnid = -1  # someone wrote before us: compare the key sets
            self._catch_up()
        if self.save_every and self._unsaved >= self.save_every:
            self.save()

    def _graph_ready(self) -> None:
        """Wait for the graph's pending additions; repair it from the record if one failed."""
        self._graph.wait()
        if self._graph.failed is not None:
            self._graph.failed = None
            self._graph.reconcile(self._table.keys(), self._records.vectors)

    def save(self) -> bool:
        """Write the graph file atomically; False (logged, nothing half-written) when the disk
        refuses: the record is complete, and the next open repairs the graph from it."""
        with self._lock:
            if self._graph is None:
                return True
            self._graph_ready()
            saved = self._graph.save()
            if saved:
                self._unsaved = 0
            return saved

    def close(self) -> None:
        with self._lock:
            if self._records is None:
                return
            if self._unsaved:
                self.save()
            if self._graph is not None:
                self._graph.close()
            self._records.close()
            self._records = None

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
                f'{expected}: it was built with another encoder model. Start a new workspace '
                f'for this model (--workspace DIR or LOUPE_WORKSPACE=DIR), or go back to the '
                f'old model, or delete {self.path.parent} and index again with this one')

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
        return normalise(vectors)

    def upsert(self, parent_id: str, chunks: Sequence, tags: Optional[dict] = None) -> int:
        """Replace the chunks of ``parent_id``; each chunk has box, kind, label, embedding."""
        return self.upsert_many([(parent_id, chunks, tags)])

    def upsert_many(self, items: Iterable[Tuple[str, Sequence, Optional[dict]]]) -> int:
        """Replace the chunks of several parents in one LMDB transaction; returns chunks stored.

        A parent given without chunks is removed. Nothing is written when any item is invalid,
        or when the disk is full (``StorageFullError``).
        """
        prepared = [(pid, list(chunks or ()), dict(tags or {}), self._vectors(pid, chunks or ()))
                    for pid, chunks, tags in items or ()]
        if not prepared:
            return 0
        sizes = [vecs.shape[1] for *_, vecs in prepared if len(vecs)]
        with self._lock:
            self._catch_up()
            ndim = self.ndim or (sizes[0] if sizes else None)
            for size in sizes:
                self._check_ndim(size, 'chunk embedding', ndim)
            written = self._records.replace(prepared, ndim)
            if self._graph is None:
                if ndim is None:
                    self._generation = written.generation
                    return 0
                self.ndim = ndim
                self._graph = Graph(self.path, ndim, self.settings)
            self._apply(written)
        return len(written.added.keys)

    def delete(self, parent_ids: Optional[Iterable[str]]) -> int:
        """Remove the chunks of these parents; returns how many chunks were removed."""
        parent_ids = list(parent_ids or ())
        if not parent_ids:
            return 0
        with self._lock:
            self._catch_up()
            written = self._records.delete(parent_ids)
            if self._graph is not None:
                self._apply(written)
            else:
                self._generation = written.generation
        return len(written.removed)

    def merge_tags(self, tags_by_parent: Dict[str, dict], remove: Sequence[str] = ()) -> List[str]:
        """Merge tags into indexed parents' (what filters see) and drop the ``remove`` keys;
        vectors stay. Returns the parents found."""
        with self._lock:
            return self._records.merge_tags(tags_by_parent, remove)

    # -- reads ------------------------------------------------------------------------------

    def search(self, queries, k: int = 10, filter: Optional[dict] = None,
               kinds: Optional[Iterable[str]] = None) -> List[ChunkHits]:
        """Top ``k`` chunks per query row, most similar first, as ``ChunkHits`` (columns; a
        sequence of ``ChunkHit`` too).

        ``kinds`` keeps only chunks of those kinds (``('whole',)``: see ``nearest_whole``).
        With a ``filter`` (tag -> value, or tag -> list of accepted values) or ``kinds`` the
        graph is searched deeper until ``k`` pass (see ``loupe.ann.search``). A zero query
        vector gets no hits.
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
            self._catch_up()
            self._check_ndim(queries.shape[1], 'query embedding')
            if self._graph is None:
                return [ChunkHits.empty() for _ in queries]
            self._graph_ready()
            precision = self.settings['precision']
            if precision in policy.RESCORE:
                queries = normalise(queries)  # cosine graphs normalise queries themselves
            if not filter and precision not in policy.RESCORE:
                return policy.search(self._graph, self._table, queries, k, precision,
                                     kinds=kinds, kind_share=self._kind_share(kinds))
            return self._records.read(lambda txn: policy.search(
                self._graph, self._table, queries, k, precision, filter, kinds,
                kind_share=self._kind_share(kinds),
                tags=lambda pid: self._records.tags(txn, pid),
                vectors=lambda keys: self._records.vectors(keys, txn)))

    def _kind_share(self, kinds) -> float:
        if kinds is None or not len(self._table):
            return 1.0
        return max(self._table.kind_count(kinds), 1) / len(self._table)

    def nearest_whole(self, queries, k: int = 10) -> List[ChunkHits]:
        """The ``k`` images whose whole-image vector (kind 'whole') is most similar to each
        query row, best first: kNN over whole-image vectors only (recommendations, semantic
        duplicates), one graph search per query (several rounds when whole-image chunks are a
        small share), never all pairs. Hits have ``parent_id`` and ``similarity``; an indexed
        image is among its own neighbours.
        """
        return self.search(queries, k, kinds=(KIND_WHOLE,))

    def whole_vectors(self, parent_ids: Optional[Iterable[str]] = None
                      ) -> Tuple[List[str], np.ndarray]:
        """``(ids, vectors)``: the whole-image vector (kind 'whole', L2-normalised, float32,
        one row per id, in ``ids``' order) of every indexed image, or of those of
        ``parent_ids`` that are indexed (unknown ids, and images without a whole chunk, are
        left out).

        Read from the graph (f16/f32) or the float16 record (i8), so no query re-encodes.
        """
        wanted = None if parent_ids is None else list(dict.fromkeys(parent_ids))
        with self._lock:
            self._catch_up()
            ids, keys = self._table.first_of_kind(KIND_WHOLE, wanted)
            if not ids:
                return [], np.zeros((0, self.ndim or 0), np.float32)
            vectors = self._graph.vectors(keys)
            if vectors is None:
                vectors = self._records.vectors(keys)
        return ids, normalise(np.asarray(vectors, dtype=np.float32))

    def parent_tags(self, parent_ids: Sequence[str]) -> List[dict]:
        """The tags of each parent ({} for an unknown one), as filters see them."""
        return self._records.read(lambda txn: [self._records.tags(txn, p) for p in parent_ids])

    def parent_records(self, batch: int = 1000):
        """Every parent, in batches: lists of ``(parent_id, tags, [(chunk header, vector)])``,
        the header a dict of box ``b``, kind ``k``, label ``l``; the vector the stored float16
        one. For copying an index elsewhere without re-encoding (``loupe reshard``)."""
        records = self._records

        def read(txn, chunk):
            return [(record['id'], record['tags'],
                     list(zip((h for _, h in records.headers(txn, record['keys'])),
                              records.vectors(record['keys'], txn) if record['keys'] else [])))
                    for record in records.parents(txn, chunk)]

        with self._lock:
            parent_ids = records.read(lambda txn: [r['id'] for r in records.parents(txn)])
        for start in range(0, len(parent_ids), batch):
            with self._lock:
                yield records.read(lambda txn: read(txn, parent_ids[start:start + batch]))

    def known_parents(self, parent_ids: Iterable[str]) -> set:
        """The ids among ``parent_ids`` that have chunks in the index."""
        with self._lock:
            self._catch_up()
            return {i for i in parent_ids if self._table.has_parent(i)}

    @property
    def graph(self):
        """The bare usearch graph (benchmarks compare against it)."""
        return self._graph.index if self._graph is not None else None

    def __len__(self) -> int:
        with self._lock:
            return self._records.counts()[0]

    def stats(self) -> dict:
        with self._lock:
            chunks, parents = self._records.counts()
            return {'path': str(self.path), 'chunks': chunks, 'parents': parents,
                    'ndim': self.ndim,
                    'memory_bytes': self._graph.memory_usage if self._graph is not None else 0,
                    **self.settings}
