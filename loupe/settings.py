"""Where loupe keeps its data: ``$LOUPE_WORKSPACE`` (default ``./workspace``)."""
import os
from pathlib import Path

from loupe.constants import ENV_WORKSPACE

DEFAULT_WORKSPACE = 'workspace'
STORAGE_NAME = 'RootStorage'  # the root storage executor's workspace folder
STORE_DIR = 'images'


def workspace_root() -> Path:
    return Path(os.environ.get(ENV_WORKSPACE) or DEFAULT_WORKSPACE).resolve()


def executor_workspace(executor) -> Path:
    """Jina's workspace where the flow or the executor was given one, else ``$LOUPE_WORKSPACE/<name>``.

    Jina's own fallback (~/.cache/jina) would hide the data from the user.
    """
    explicit = executor.metas.workspace or getattr(executor.runtime_args, 'workspace', None)
    path = Path(executor.workspace) if explicit else workspace_root() / executor.metas.name
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_store_path() -> Path:
    """The root store as the flows lay it out; the reranker reads previews from it."""
    return workspace_root() / STORAGE_NAME / STORE_DIR
