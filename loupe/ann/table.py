"""What a search hit needs of each chunk, in memory: parent, box, kind and label by key.

LMDB stays the durable record; this table is rebuilt from it when the index opens and kept in
step with every write, so a search looks its hits up with one vectorised ``searchsorted`` rather
than decoding an LMDB record per hit (~8 us each: most of a search at k = 100).

Per chunk: key (8 B), parent slot (4 B), box code (4 B), kind code (2 B), label code (4 B).
Boxes, kinds and labels are interned (grid and whole-image boxes repeat for every image of a
size), so a chunk costs ~22 B beside the graph's ~1,270 B.
"""
import json
import struct
from dataclasses import dataclass
from typing import Dict, Hashable, List, Optional, Sequence

import numpy as np


class _Codes:
    """Interned values: value -> small int, append-only (codes stay valid for results)."""

    def __init__(self):
        self.values: List = []
        self._code: Dict[Hashable, int] = {}

    def code(self, value) -> int:
        code = self._code.get(value)
        if code is None:
            code = self._code[value] = len(self.values)
            self.values.append(value)
        return code


@dataclass(frozen=True)
class ChunkHit:
    parent_id: str
    box: List[float]
    kind: str
    label: Optional[str]
    similarity: float  # cosine similarity in [-1, 1]


def _coded(values: Sequence) -> tuple:
    """(codes int32, distinct values) of ``values``; None is code -1."""
    names: Dict = {None: -1}
    codes = np.fromiter((names.setdefault(v, len(names) - 1) for v in values), np.int32,
                        len(values))
    return codes, list(names)[1:]


class ChunkHits(Sequence):
    """One query's hits as columns, best first; also a sequence of ``ChunkHit``.

    ``parent_ids``: list; ``boxes`` (n, 4) float64; ``similarities`` float32 (cosine, in
    [-1, 1]); ``kinds`` and ``labels`` (lists) are kept as codes into name lists until read.
    """

    __slots__ = ('parent_ids', 'boxes', 'similarities', 'kind_codes', 'kind_names',
                 'label_codes', 'label_names')

    def __init__(self, parent_ids: List[str], boxes: np.ndarray, similarities: np.ndarray,
                 kind_codes: np.ndarray, kind_names: List[str], label_codes: np.ndarray,
                 label_names: List[str]):
        self.parent_ids, self.boxes, self.similarities = parent_ids, boxes, similarities
        self.kind_codes, self.kind_names = kind_codes, kind_names  # names: append-only lists
        self.label_codes, self.label_names = label_codes, label_names  # code -1: no label

    @classmethod
    def of(cls, parent_ids: List[str], boxes, similarities, kinds: Sequence[str],
           labels: Sequence[Optional[str]]) -> 'ChunkHits':
        return cls(list(parent_ids), np.asarray(boxes, np.float64).reshape(-1, 4),
                   np.asarray(similarities, np.float32), *_coded(kinds), *_coded(labels))

    @classmethod
    def empty(cls) -> 'ChunkHits':
        return cls.of([], np.zeros((0, 4)), np.zeros(0), [], [])

    @classmethod
    def best_of(cls, parts: Sequence['ChunkHits'], k: int) -> 'ChunkHits':
        """The ``k`` most similar hits of several searches' hits (each shard's), best first;
        equal similarities keep ``parts``' order."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        joined = cls.of([i for p in parts for i in p.parent_ids],
                        np.concatenate([p.boxes for p in parts]),
                        np.concatenate([p.similarities for p in parts]),
                        [x for p in parts for x in p.kinds], [x for p in parts for x in p.labels])
        return joined.take(np.argsort(-joined.similarities, kind='stable')[:k])

    @property
    def kinds(self) -> List[str]:
        names = self.kind_names
        return [names[c] for c in self.kind_codes.tolist()]

    @property
    def labels(self) -> List[Optional[str]]:
        names = self.label_names
        return [None if c < 0 else names[c] for c in self.label_codes.tolist()]

    def __len__(self) -> int:
        return len(self.parent_ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        label = int(self.label_codes[i])
        return ChunkHit(self.parent_ids[i], self.boxes[i].tolist(),
                        self.kind_names[self.kind_codes[i]],
                        None if label < 0 else self.label_names[label],
                        float(self.similarities[i]))

    def take(self, rows) -> 'ChunkHits':
        rows = np.asarray(rows, dtype=np.intp)
        return ChunkHits([self.parent_ids[r] for r in rows.tolist()], self.boxes[rows],
                         self.similarities[rows], self.kind_codes[rows], self.kind_names,
                         self.label_codes[rows], self.label_names)

    def __eq__(self, other) -> bool:
        return list(self) == list(other)

    def to_bytes(self) -> bytes:
        """A compact message of these hits (one field between executors, not a document per
        hit): a JSON header of the distinct parent ids, kinds and labels, then the arrays."""
        ids: Dict[str, int] = {}
        parent = np.fromiter((ids.setdefault(p, len(ids)) for p in self.parent_ids), '<i4',
                             len(self))
        kinds, kind = np.unique(self.kind_codes, return_inverse=True)
        labels, label = np.unique(self.label_codes, return_inverse=True)
        header = json.dumps({'n': len(self), 'ids': list(ids),
                             'kinds': [self.kind_names[c] for c in kinds.tolist()],
                             'labels': [None if c < 0 else self.label_names[c]
                                        for c in labels.tolist()]})
        header = header.encode()
        return b''.join([struct.pack('<I', len(header)), header, parent.tobytes(),
                         np.asarray(self.boxes, '<f8').tobytes(),
                         np.asarray(self.similarities, '<f4').tobytes(),
                         kind.astype('<i4').tobytes(), label.astype('<i4').tobytes()])

    @classmethod
    def from_bytes(cls, message: bytes) -> 'ChunkHits':
        (size,) = struct.unpack_from('<I', message)
        header = json.loads(message[4:4 + size])
        n, offset = header['n'], 4 + size
        columns = []
        for dtype, width in (('<i4', 1), ('<f8', 4), ('<f4', 1), ('<i4', 1), ('<i4', 1)):
            columns.append(np.frombuffer(message, dtype, n * width, offset))
            offset += n * width * np.dtype(dtype).itemsize
        parent, boxes, sims, kind, label = columns
        ids = header['ids']
        return cls([ids[i] for i in parent.tolist()], boxes.reshape(n, 4), sims, kind,
                   header['kinds'], label, header['labels'])

    def __repr__(self) -> str:
        return f'ChunkHits({list(self)!r})'


class HitTable:
    """Parallel arrays ordered by key (keys only grow, so adding is appending)."""

    def __init__(self):
        self._n = 0  # rows in use, dead ones included
        self._keys = np.zeros(0, np.uint64)
        self._parent = np.zeros(0, np.int32)  # parent slot; -1: deleted row
        self._box = np.zeros(0, np.int32)
        self._kind = np.zeros(0, np.int16)
        self._label = np.zeros(0, np.int32)  # -1: no label
        self._dead = 0
        self._ids: List[Optional[str]] = []  # slot -> parent id
        self._slot: Dict[str, int] = {}
        self._live_per_slot = np.zeros(0, np.int32)
        self._free: List[int] = []
        self._boxes = _Codes()
        self._box_array = np.zeros((0, 4))
        self.kinds, self.labels = _Codes(), _Codes()
        self._per_kind = np.zeros(0, np.int64)  # live chunks per kind code

    def __len__(self) -> int:
        return self._n - self._dead

    def keys(self) -> np.ndarray:
        """Live keys, ascending."""
        keys = self._keys[:self._n]
        return keys[self._parent[:self._n] >= 0]

    # -- changes ----------------------------------------------------------------------------

    def _slot_of(self, parent_id: str) -> int:
        slot = self._slot.get(parent_id)
        if slot is None:
            if self._free:
                slot = self._free.pop()
                self._ids[slot] = parent_id
            else:
                slot = len(self._ids)
                self._ids.append(parent_id)
                if slot >= len(self._live_per_slot):
                    self._live_per_slot = np.concatenate(
                        [self._live_per_slot, np.zeros(max(1024, slot), np.int32)])
            self._slot[parent_id] = slot
        return slot

    def add(self, keys: np.ndarray, parent_ids: Sequence[str], boxes: Sequence,
            kinds: Sequence[str], labels: Sequence[Optional[str]]) -> None:
        n = len(keys)
        if not n:
            return
        keys = np.asarray(keys, np.uint64)
        slots = np.fromiter((self._slot_of(p) for p in parent_ids), np.int32, n)
        box_codes = np.fromiter((self._boxes.code(tuple(b)) for b in boxes), np.int32, n)
        if len(self._boxes.values) > len(self._box_array):
            self._box_array = np.asarray(self._boxes.values, dtype=np.float64).reshape(-1, 4)
        kind_codes = np.fromiter((self.kinds.code(k) for k in kinds), np.int16, n)
        label_codes = np.fromiter((-1 if label is None else self.labels.code(label)
                                   for label in labels), np.int32, n)
        np.add.at(self._live_per_slot, slots, 1)
        self._count_kinds(kind_codes, 1)
        order = np.argsort(keys, kind='stable')
        columns = (keys[order], slots[order], box_codes[order], kind_codes[order],
                   label_codes[order])
        if self._n and keys.min() <= self._keys[self._n - 1]:
            self._merge(columns)  # keys of another process's write, applied late
            return
        if self._n + n > len(self._keys):
            self._resize(max(2 * len(self._keys), self._n + n, 1024))
        end = self._n + n
        for array, column in zip(self._arrays(), columns):
            array[self._n:end] = column
        self._n = end

    def remove(self, keys: np.ndarray) -> None:
        rows = self.rows(np.asarray(keys, np.uint64))
        rows = rows[rows >= 0]
        if not len(rows):
            return
        slots = self._parent[rows]
        np.subtract.at(self._live_per_slot, slots, 1)
        self._count_kinds(self._kind[rows], -1)
        self._parent[rows] = -1
        self._dead += len(rows)
        for slot in np.unique(slots).tolist():
            if self._live_per_slot[slot] == 0:
                del self._slot[self._ids[slot]]
                self._ids[slot] = None
                self._free.append(slot)
        if self._dead > 1024 and self._dead > self._n // 2:
            self._compact()

    def _count_kinds(self, codes: np.ndarray, sign: int) -> None:
        counts = np.bincount(codes, minlength=len(self.kinds.values))
        if len(counts) > len(self._per_kind):
            self._per_kind = np.concatenate(
                [self._per_kind, np.zeros(len(counts) - len(self._per_kind), np.int64)])
        self._per_kind[:len(counts)] += sign * counts

    def _arrays(self):
        return self._keys, self._parent, self._box, self._kind, self._label

    def _resize(self, capacity: int) -> None:
        def grown(a):
            out = np.empty(capacity, a.dtype)
            out[:self._n] = a[:self._n]
            return out

        self._keys, self._parent, self._box, self._kind, self._label = map(grown, self._arrays())

    def _set(self, columns, n: int) -> None:
        self._keys, self._parent, self._box, self._kind, self._label = (
            np.ascontiguousarray(c) for c in columns)
        self._n, self._dead = n, 0

    def _compact(self) -> None:
        live = self._parent[:self._n] >= 0
        self._set([a[:self._n][live] for a in self._arrays()], int(live.sum()))

    def _merge(self, columns) -> None:
        live = self._parent[:self._n] >= 0
        merged = [np.concatenate([a[:self._n][live], c]) for a, c in zip(self._arrays(), columns)]
        order = np.argsort(merged[0], kind='stable')
        self._set([m[order] for m in merged], len(order))

    # -- lookups ----------------------------------------------------------------------------

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key; -1 for keys not (or no longer) in the table."""
        if not self._n:
            return np.full(len(keys), -1, np.intp)
        table = self._keys[:self._n]
        rows = np.searchsorted(table, keys)
        np.minimum(rows, self._n - 1, out=rows)
        found = (table[rows] == keys) & (self._parent[rows] >= 0)
        return np.where(found, rows, -1)

    def has_parent(self, parent_id: str) -> bool:
        return parent_id in self._slot

    def kind_count(self, kinds) -> int:
        """Live chunks of these kinds."""
        return int(sum(self._per_kind[c] for c, v in enumerate(self.kinds.values)
                       if v in kinds and c < len(self._per_kind)))

    def first_of_kind(self, kind: str, parent_ids=None):
        """(parent ids, keys): the first chunk of ``kind`` (lowest key) of every parent, in
        key order, or of those of ``parent_ids`` that have one, in their order."""
        code = self._code_of(kind)
        n = self._n
        rows = np.flatnonzero((self._parent[:n] >= 0) & (self._kind[:n] == code))
        slots, first = np.unique(self._parent[rows], return_index=True)
        rows = rows[first]
        if parent_ids is None:
            order = np.argsort(rows)
            slots, rows = slots[order], rows[order]
        else:
            row_of = dict(zip(slots.tolist(), rows.tolist()))
            picked = [(p, row_of[self._slot[p]]) for p in parent_ids
                      if p in self._slot and self._slot[p] in row_of]
            return [p for p, _ in picked], self._keys[[r for _, r in picked]]
        return [self._ids[s] for s in slots.tolist()], self._keys[rows]

    def _code_of(self, value) -> int:
        return self.kinds._code.get(value, -1)

    def kind_codes(self, rows: np.ndarray) -> np.ndarray:
        return self._kind[rows]

    def parent_slots(self, rows: np.ndarray) -> np.ndarray:
        return self._parent[rows]

    def parent_id(self, slot: int) -> str:
        return self._ids[slot]

    def hits(self, rows: np.ndarray, similarities: np.ndarray) -> ChunkHits:
        """The hits of ``rows`` (all live), in that order."""
        ids = self._ids
        return ChunkHits([ids[s] for s in self._parent[rows].tolist()],
                         self._box_array[self._box[rows]], similarities.astype(np.float32),
                         self._kind[rows], self.kinds.values, self._label[rows],
                         self.labels.values)
