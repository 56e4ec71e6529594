"""Where loupe keeps its data: ``$LOUPE_WORKSPACE``, else one per-user data folder.

The default does not depend on the current folder (a relative ``./workspace`` gave an empty
index from anywhere else): ``$XDG_DATA_HOME/loupe``, i.e. ``~/.local/share/loupe``.
"""
import os
from pathlib import Path

from loupe.constants import ENV_WORKSPACE

DEFAULT_WORKSPACE_HELP = '$XDG_DATA_HOME/loupe or ~/.local/share/loupe'
STORAGE_NAME = 'ParentStorage'  # the parent storage executor's workspace folder
STORE_DIR = 'images'


def default_workspace() -> Path:
    """The platform's per-user data folder (XDG base directories, as on Linux and most Unixes)."""
    data_home = os.environ.get('XDG_DATA_HOME') or '~/.local/share'
    return Path(data_home).expanduser() / 'loupe'


def workspace_root() -> Path:
    configured = os.environ.get(ENV_WORKSPACE)
    return (Path(configured).expanduser() if configured else default_workspace()).resolve()


def executor_workspace(executor) -> Path:
    """Jina's workspace where the flow or the executor was given one, else ``$LOUPE_WORKSPACE/<name>``.

    Jina's own fallback (~/.cache/jina) would hide the data from the user.
    A shard of a sharded executor gets its own folder under it (``loupe.shard``).
    """
    from loupe.shard import Shard, shard_folder

    explicit = executor.metas.workspace or getattr(executor.runtime_args, 'workspace', None)
    shard = Shard.of(executor)
    if shard.sharded:  # Jina's own per-shard folder would not be recorded
        base = (Path(explicit) if explicit else workspace_root()) / executor.metas.name
        return shard_folder(base, shard.id, shard.count)
    path = Path(executor.workspace) if explicit else workspace_root() / executor.metas.name
    return shard_folder(path, 0, 1)


def default_store_path() -> Path:
    """The parent store as the flows lay it out; the reranker reads previews from it."""
    return workspace_root() / STORAGE_NAME / STORE_DIR
