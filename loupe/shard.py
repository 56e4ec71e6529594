"""Shards of the stateful executors (chunk indexer, parent storage): who owns an image, where each
shard keeps its data, and the record that keeps a workspace's shard count fixed.

An image belongs to exactly one shard, ``shard_of(id, N)``: a hash of its id (not Python's
``hash``, which changes per process), so re-indexing, ``/delete`` and ``/exists`` reach the shard
that holds it and nothing is ever stored twice. Every shard receives every request (``polling:
ALL``); a shard only acts on the images it owns and passes the others on untouched, and it
stamps each document it answers (``ImageDoc.shard``) so that ``loupe.shard_merge`` can tell the
shards' answers apart and notice a shard that did not answer.

Layout: an executor's folder ``<workspace>/<Executor>/`` holds ``shards.json`` (``{"shards":
N}``) and, with N > 1, one folder per shard, ``shard-<k>/``, laid out as an unsharded folder.
"""
import json
import os
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path
from typing import Iterable, List, Optional

from loupe.errors import LoupeError

SHARDS_FILE = 'shards.json'
SHARD_DIR = 'shard-{}'


class ShardCountError(LoupeError):
    """A workspace made with one number of shards, opened with another."""


def shard_of(doc_id: str, shards: int) -> int:
    """The shard that owns ``doc_id``: stable across processes, machines and Python versions."""
    if shards <= 1:
        return 0
    digest = blake2b(doc_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'big') % shards


def recorded_shards(base: Path) -> Optional[int]:
    """The shard count of the data in the executor folder ``base``; None while it holds none.

    A folder with data but no record predates shards: one shard.
    """
    base = Path(base)

    def read() -> Optional[int]:
        try:
            return int(json.loads((base / SHARDS_FILE).read_text())['shards'])
        except FileNotFoundError:
            return None

    found = read()
    if found is None and base.is_dir() and any(
            not p.name.startswith('.' + SHARDS_FILE) for p in base.iterdir()):
        # Read again: a sibling shard starting at the same time records the count before it
        # makes its folder, so a folder seen here means the record exists by now, if at all.
        found = read() or 1
    return found


def _record(base: Path, shards: int) -> int:
    """Record ``shards`` unless a concurrent shard recorded first; returns the recorded count.

    The shards of one executor start at the same time: the record is written to a private file
    and linked into place, which fails when it exists, so exactly one count wins.
    """
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f'.{SHARDS_FILE}.{os.getpid()}'
    tmp.write_text(json.dumps({'shards': shards}))
    try:
        os.link(tmp, base / SHARDS_FILE)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return recorded_shards(base)


def mismatch_message(base: Path, found: int, wanted: int) -> str:
    return (f'{base} holds data made with {found} shard{"s" * (found != 1)}, opened with '
            f'{wanted}: serve it with --shards {found}, or redistribute it offline first with '
            f'`loupe reshard --to {wanted}`')


def shard_folder(base, shard_id: int, shards: int) -> Path:
    """The folder of shard ``shard_id`` of ``shards`` under the executor folder ``base``.

    Records the count on first use; refuses (``ShardCountError``) a count other than the one
    recorded, which would hide images from every search and store new copies of re-indexed ones.
    """
    base = Path(base)
    found = recorded_shards(base)
    if found is None:
        found = _record(base, shards)
    elif not (base / SHARDS_FILE).exists() and found == shards:
        _record(base, shards)  # data from before shards: record its count
    if found != shards:
        raise ShardCountError(mismatch_message(base, found, shards))
    path = base if shards == 1 else base / SHARD_DIR.format(shard_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def shard_folders(base, shards: int) -> List[Path]:
    base = Path(base)
    return [base] if shards == 1 else [base / SHARD_DIR.format(k) for k in range(shards)]


@dataclass(frozen=True)
class Shard:
    """Which shard of how many an executor process is (``id`` 0 of 1: not sharded)."""

    id: int = 0
    count: int = 1
    name: str = ''

    @classmethod
    def of(cls, executor) -> 'Shard':
        """From Jina's runtime arguments (``shards``, ``shard_id``, ``name``)."""
        args = executor.runtime_args
        count = int(getattr(args, 'shards', None) or 1)
        shard_id = int(getattr(args, 'shard_id', None) or 0)
        name = str(getattr(args, 'name', None) or executor.metas.name).split('/')[0]
        return cls(shard_id if count > 1 else 0, count, name)

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def owns(self, doc_id: str) -> bool:
        return shard_of(doc_id, self.count) == self.id

    def mine(self, docs: Optional[Iterable]) -> list:
        """The documents of ``docs`` this shard owns (all of them when not sharded)."""
        return [doc for doc in docs or () if self.owns(doc.id)]

    def stamp(self, endpoint: str, docs, **extra):
        """Mark ``docs`` as answered by this shard on ``endpoint``, for the merger (a no-op when
        not sharded); returns them.

        The merger learns the endpoint from the stamp: Jina tells a handler nothing of it, and
        a merger with a handler per endpoint would make the shards' head announce endpoints
        the sharded executor may not name (the gateway then fails to start).
        ``extra`` travels with the stamp (the chunk indexer sends how many hits it cut to).
        """
        if self.sharded:
            for doc in docs or ():
                doc.shard = {'id': self.id, 'of': self.count, 'by': self.name, 'on': endpoint,
                             **extra}
        return docs


class ShardedStore:
    """A read-only parent store over the stores of all shards: each id is read from its owner's.

    The reranker reads result images this way on one machine; the shards' folders must be
    readable where it runs.
    """

    def __init__(self, folders: List[Path]):
        from loupe.store import ParentStore

        self._stores = [ParentStore(folder, readonly=True) for folder in folders]

    def get_many(self, ids: Iterable[str], preview: bool = True) -> dict:
        by_shard: dict = {}
        for id_ in ids:
            by_shard.setdefault(shard_of(id_, len(self._stores)), []).append(id_)
        found = {}
        for shard_id, shard_ids in by_shard.items():
            found.update(self._stores[shard_id].get_many(shard_ids, preview=preview))
        return found

    def close(self) -> None:
        for store in self._stores:
            store.close()


def readonly_store(path):
    """The parent store at ``path`` (``<workspace>/ParentStorage/images``), sharded or not."""
    from loupe.store import ParentStore

    path = Path(path)
    shards = recorded_shards(path.parent) or 1
    if shards > 1 and not (path / 'data.mdb').exists():
        return ShardedStore([folder / path.name for folder in shard_folders(path.parent, shards)])
    return ParentStore(path, readonly=True)
