"""``loupe reshard --to M``: redistribute a workspace's images over M shards, offline.

Copies the durable records (the chunk index's LMDB: boxes, kinds, labels, float16 vectors and
tags; the parent store's metadata and previews) into a new layout beside the old one, each image
to ``shard_of(id, M)``; nothing is re-encoded. The chunk graphs are built from the copied
vectors with the old index's settings. Only when every copy is complete is the old layout moved
aside and the new one put in its place (a rename per executor folder), then the old one is
deleted. A reshard that stops leaves each folder either as it was or fully redistributed;
running it again finishes the job.

No service may hold the workspace meanwhile (it would keep serving, and writing, the old
layout).
"""
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, Optional

import numpy as np

from loupe.ann import ChunkIndex
from loupe.errors import LoupeError
from loupe.scaling import STATEFUL_FOLDERS, workspace_shards
from loupe.paths import STORAGE_NAME, STORE_DIR
from loupe.shard import recorded_shards, shard_folder, shard_folders, shard_of
from loupe.store import ParentStore

INDEX_DIR = 'chunks'  # as the chunk indexer lays it out
_SETTINGS = ('precision', 'connectivity', 'expansion_add', 'expansion_search')


def _copy_chunks(sources, targets, to: int) -> int:
    images = 0
    for source in sources:
        with ChunkIndex(source) as index:
            settings = {name: index.settings[name] for name in _SETTINGS}
            opened = [ChunkIndex(t, save_every=None, **settings) for t in targets]
            try:
                for batch in index.parent_records():
                    grouped: Dict[int, list] = {}
                    for parent_id, tags, chunks in batch:
                        items = [SimpleNamespace(box=h['b'], kind=h['k'], label=h['l'],
                                                 embedding=np.asarray(v, dtype=np.float32))
                                 for h, v in chunks]
                        grouped.setdefault(shard_of(parent_id, to), []).append(
                            (parent_id, items, tags))
                    for shard_id, items in grouped.items():
                        opened[shard_id].upsert_many(items)
                    images += len(batch)
            finally:
                for target in opened:
                    target.close()
    return images


def _copy_records(sources, targets, to: int) -> int:
    images = 0
    opened = [ParentStore(t) for t in targets]
    try:
        for source in sources:
            store = ParentStore(source)
            try:
                for batch in store.record_batches():
                    grouped: Dict[int, list] = {}
                    for record in batch:
                        grouped.setdefault(shard_of(record.id, to), []).append(record)
                    for shard_id, records in grouped.items():
                        opened[shard_id].put(records)
                    images += len(batch)
            finally:
                store.close()
    finally:
        for target in opened:
            target.close()
    return images


def reshard(root, to: int, log: Optional[Callable[[str], None]] = None) -> Dict[str, int]:
    """Redistribute the workspace at ``root`` over ``to`` shards; images copied per folder."""
    log = log or (lambda message: None)
    root = Path(root)
    if to < 1:
        raise LoupeError(f'--to must be >= 1, got {to}')
    found = workspace_shards(root)
    if found is None:
        raise LoupeError(f'no indexed data in {root}')
    copied = {}
    for folder in STATEFUL_FOLDERS:
        base = root / folder
        current = recorded_shards(base)
        if current is None or current == to:
            continue
        new, old = root / f'.{folder}.reshard', root / f'.{folder}.old'
        for leftover in (new, old):
            shutil.rmtree(leftover, ignore_errors=True)
        targets = [shard_folder(new, k, to) for k in range(to)]
        sources = shard_folders(base, current)
        log(f'{folder}: {current} -> {to} shards')
        if folder == STORAGE_NAME:
            copied[folder] = _copy_records([s / STORE_DIR for s in sources],
                                           [t / STORE_DIR for t in targets], to)
        else:
            copied[folder] = _copy_chunks([s / INDEX_DIR for s in sources],
                                          [t / INDEX_DIR for t in targets], to)
        base.rename(old)
        new.rename(base)
        shutil.rmtree(old)
        log(f'{folder}: {copied[folder]} images redistributed')
    return copied
