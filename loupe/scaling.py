"""Shards and replicas of a flow: which executors get which, and the settings Jina needs for them.

- The stateful executors (``indexer``, ``storage``: they own data) run as ``shards: N``. Each
  gets ``polling: ALL`` (every shard sees every request and acts on the images it owns, see
  ``loupe.shard``) and ``uses_after`` the shard merger with ``no_reduce: true``.
- The stateless ones (``segmenter``, ``encoder``, ``reranker``: models, no data) run as
  ``replicas: M``; Jina balances requests over the replicas. With ``env: {CUDA_VISIBLE_DEVICES:
  RR}`` (or that variable set so for ``loupe serve``), Jina gives replica r GPU ``r mod GPUs``.

A flow YAML may say ``shards: N`` on a stateful executor; the rest is filled in here.
"""
from pathlib import Path
from typing import List, Optional

from loupe.errors import LoupeError
from loupe.paths import STORAGE_NAME, workspace_root
from loupe.shard import mismatch_message, recorded_shards

STATEFUL = ('indexer', 'storage')  # executor names in the flows
STATELESS = ('segmenter', 'encoder', 'reranker')
# Their folders in the workspace (Jina's metas.name: the executor class).
STATEFUL_FOLDERS = ('ChunkIndexer', STORAGE_NAME)
# Every shard sees every request. A plain `ALL` is not enough: Jina's head polls /index with
# ANY unless the endpoint is named (jina/serve/runtimes/head/request_handling.py).
POLL_ALL = {'/index': 'ALL', '/search': 'ALL', '*': 'ALL'}
MERGER = Path('shard_merge', 'config.yml')


def workspace_shards(root: Optional[Path] = None) -> Optional[int]:
    """The shard count the workspace's data was made with (None: no data yet).

    Refuses a workspace whose executors disagree (it was edited by hand, or a reshard stopped).
    """
    root = Path(root) if root is not None else workspace_root()
    counts = {name: recorded_shards(root / name) for name in STATEFUL_FOLDERS}
    found = {n for n in counts.values() if n is not None}
    if len(found) > 1:
        raise LoupeError(f'the executors in {root} hold data with different shard counts '
                         f'({counts}); run `loupe reshard --to N` to make them agree')
    return found.pop() if found else None


def check_workspace(shards: Optional[int], root: Optional[Path] = None) -> int:
    """The shard count to serve the workspace with: ``shards``, or the recorded one when None.

    A count other than the recorded one is refused with what to do instead.
    """
    if shards is not None and shards < 1:
        raise LoupeError(f'--shards must be >= 1, got {shards}')
    root = Path(root) if root is not None else workspace_root()
    found = workspace_shards(root)
    if shards is None:
        return found or 1
    if found is not None and found != shards:
        raise LoupeError(mismatch_message(root, found, shards))
    return shards


def scale_config(config: dict, shards: Optional[int] = None,
                 replicas: Optional[int] = None, gpu: bool = False) -> dict:
    """Set ``shards`` on the stateful executors and ``replicas`` on the stateless ones of a flow
    config (a dict, as ``loupe.flows.flow_config`` reads it); None leaves the YAML's value.

    Stateful executors with ``shards`` > 1 (given here or in the YAML) get what sharding needs.
    ``gpu`` gives each stateless replica its own GPU, round robin.
    """
    for executor in config.get('executors', []):
        name = executor.get('name')
        if name in STATEFUL:
            if shards is not None:
                executor['shards'] = shards
            if int(executor.get('shards') or 1) > 1:
                executor.setdefault('polling', dict(POLL_ALL))
                # The merger lives beside the executor (executors/shard_merge/).
                merger = Path(str(executor.get('uses', ''))).parent.parent / MERGER
                executor.setdefault('uses_after', str(merger))
                executor['no_reduce'] = True
        elif name in STATELESS:
            if replicas is not None:
                executor['replicas'] = replicas
            if gpu:
                executor.setdefault('env', {})['CUDA_VISIBLE_DEVICES'] = 'RR'
    return config


def flow_shards(config: dict) -> List[int]:
    """The shard counts of the flow's stateful executors."""
    return [int(e.get('shards') or 1) for e in config.get('executors', [])
            if e.get('name') in STATEFUL]

