"""Checks made before a flow starts, so a wrong setting costs a second and one line, not a
minute of start-up and a page of tracebacks: missing model folders, models that cannot be had
offline."""
import os
import socket
from pathlib import Path
from typing import Dict, Iterable, Optional

from loupe.constants import (DEFAULT_CLIP_MODEL, DEFAULT_DETECTOR_MODEL, DEFAULT_DINO_MODEL,
                             DEFAULT_OWL_MODEL, ENV_CLIP_MODEL, ENV_DETECTOR_MODEL,
                             ENV_DINO_MODEL, ENV_OWL_MODEL)
from loupe.errors import ModelLoadError

# role: (flow executor name, its setting, environment variable, default checkpoint)
ROLES = {
    'CLIP': ('encoder', 'model', ENV_CLIP_MODEL, DEFAULT_CLIP_MODEL),
    'OWL-ViT': ('reranker', 'model', ENV_OWL_MODEL, DEFAULT_OWL_MODEL),
    'detector': ('segmenter', 'detector_model', ENV_DETECTOR_MODEL, DEFAULT_DETECTOR_MODEL),
    'DINO': ('segmenter', 'dino_model', ENV_DINO_MODEL, DEFAULT_DINO_MODEL),
}
HUB_HOST = 'huggingface.co'
_REACHABLE: Dict[str, bool] = {}


def flow_models(flow: str, method: Optional[str] = None) -> Dict[str, str]:
    """The checkpoint each model role of ``flow`` will load (environment > YAML > default)."""
    from loupe.flows import flow_config

    settings = {}
    for executor in flow_config(flow).get('executors', []):
        settings[executor.get('name')] = executor.get('uses_with') or {}
    segmenter = settings.get('segmenter', {})
    method = method or segmenter.get('method')
    wanted = {'CLIP': 'encoder' in settings, 'OWL-ViT': 'reranker' in settings,
              'detector': 'segmenter' in settings and method == 'detector',
              'DINO': 'segmenter' in settings and method == 'dino'}
    models = {}
    for role, (executor, key, env, default) in ROLES.items():
        if wanted[role]:
            models[role] = os.environ.get(env) or settings[executor].get(key) or default
    return models


def looks_local(checkpoint: str) -> bool:
    return checkpoint.startswith(('/', '.', '~')) or checkpoint.count('/') != 1 or \
        Path(checkpoint).exists()


def _hub_reachable(timeout: float = 3.0) -> bool:
    if HUB_HOST not in _REACHABLE:
        try:
            with socket.create_connection((HUB_HOST, 443), timeout=timeout):
                _REACHABLE[HUB_HOST] = True
        except OSError:
            _REACHABLE[HUB_HOST] = False
    return _REACHABLE[HUB_HOST]


def _cached(checkpoint: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    return isinstance(try_to_load_from_cache(checkpoint, 'config.json'), str)


def check_models(models: Dict[str, str]) -> None:
    """Raise ``ModelLoadError`` (one line) for the first checkpoint that cannot be loaded."""
    for role, checkpoint in models.items():
        env = ROLES[role][2]
        if looks_local(checkpoint):
            if not Path(checkpoint).expanduser().is_dir():
                raise ModelLoadError(f'{role} model {checkpoint}: no such folder (set {env} to a '
                                     'folder made by save_pretrained, or a hub id)')
            continue
        if _cached(checkpoint):
            continue
        offline = os.environ.get('HF_HUB_OFFLINE', '').lower() in ('1', 'true', 'yes', 'on')
        if offline or not _hub_reachable():
            why = 'HF_HUB_OFFLINE is set' if offline else f'{HUB_HOST} cannot be reached'
            raise ModelLoadError(
                f'the {role} model {checkpoint} is not downloaded and {why}. Set {env} to a '
                'local folder (made by save_pretrained), fill the Hugging Face cache where the '
                'hub is reachable and set HF_HUB_OFFLINE=1, or try the pipeline with random '
                'tiny models: eval "$(loupe tiny-models ~/loupe-tiny)"')


def check_flow(flow: str, method: Optional[str] = None, skip: Iterable[str] = ()) -> None:
    models = {role: c for role, c in flow_models(flow, method).items() if role not in skip}
    check_models(models)
