"""``loupe status``: what a workspace holds, read from its files (LMDB serves readers beside a
writing service), and whether a service owns it."""
import json
from pathlib import Path
from typing import Optional

import lmdb

from loupe import workspace as ws
from loupe.paths import STORAGE_NAME, STORE_DIR
from loupe.shard import recorded_shards, shard_folders

INDEXER_NAME = 'ChunkIndexer'
CHUNK_INDEX = Path('chunks') / 'meta'  # the chunk indexer's LMDB (loupe.ann), in each shard


def _lmdb_counts(path: Path) -> Optional[dict]:
    """Entries per named database of an LMDB store, read-only; None where there is none."""
    if not (path / 'data.mdb').exists():
        return None
    env = lmdb.open(str(path), readonly=True, lock=True, max_dbs=8, subdir=True)
    try:
        with env.begin() as txn:
            names = [bytes(key) for key, _ in txn.cursor()]
        counts = {}
        for name in names:
            db = env.open_db(name, create=False)
            with env.begin() as txn:
                counts[name.decode()] = txn.stat(db)['entries']
                if name == b'meta':
                    settings = txn.get(b'settings', db=db)
                    ndim = txn.get(b'ndim', db=db)
                    counts['settings'] = json.loads(settings) if settings else {}
                    counts['ndim'] = json.loads(ndim) if ndim else None
        return counts
    finally:
        env.close()


def _shard_counts(base: Path, inner: Path) -> list:
    """``_lmdb_counts`` of ``inner`` in each shard of the executor folder ``base``."""
    folders = shard_folders(base, recorded_shards(base) or 1)
    return [c for c in (_lmdb_counts(folder / inner) for folder in folders) if c]


def image_count(workspace: Path) -> int:
    return sum(c.get('meta', 0) for c in _shard_counts(Path(workspace) / STORAGE_NAME,
                                                        Path(STORE_DIR)))


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob('*') if p.is_file()) \
        if Path(path).is_dir() else 0


def workspace_status(workspace: Path) -> dict:
    from loupe.preflight import flow_models

    workspace = Path(workspace)
    shards = _shard_counts(workspace / INDEXER_NAME, CHUNK_INDEX)
    chunks = {**(shards[0] if shards else {}), 'chunks': sum(c.get('chunks', 0) for c in shards)}
    found = ws.owner(workspace)
    return {
        'workspace': str(workspace),
        'images': image_count(workspace),
        'chunks': chunks.get('chunks', 0),
        'embedding_dim': chunks.get('ndim'),
        'index_settings': chunks.get('settings', {}),
        'models': flow_models('serve'),
        'disk_bytes': disk_bytes(workspace),
        'service': None if found is None else {
            'pid': found.pid, 'command': found.command, 'address': found.address,
            'http_port': found.http_port, 'started': found.started},
    }


def format_status(status: dict) -> str:
    service = status['service']
    if service is None:
        running = 'none (commands start their own flow; `loupe serve --background` keeps one)'
    elif service['address']:
        running = f"{service['address']} (pid {service['pid']})"
        if service.get('http_port'):
            running += f", HTTP on port {service['http_port']}"
    else:
        running = f"held by {service['command']} (pid {service['pid']})"
    settings = ', '.join(f'{k} {v}' for k, v in status['index_settings'].items()) or '-'
    models = ', '.join(f'{role} {name}' for role, name in status['models'].items())
    return '\n'.join([
        f"workspace  {status['workspace']}",
        f"images     {status['images']}",
        f"chunks     {status['chunks']}" + (f" ({status['embedding_dim']}-d)"
                                             if status['embedding_dim'] else ''),
        f'models     {models}',
        f'index      {settings}',
        f"disk       {status['disk_bytes'] / 1e6:.1f} MB",
        f'service    {running}',
    ])
