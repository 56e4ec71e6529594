"""Loading checkpoints (hub id or local folder) and choosing devices, for every model role."""
import os
from typing import Optional

import torch

from loupe.errors import ModelLoadError


def resolve_checkpoint(explicit: Optional[str], env_var: str, default: str) -> str:
    """A checkpoint given explicitly (a command-line flag, or what an executor resolved with
    ``service_checkpoint``) wins, then the environment, then the built-in default."""
    return explicit or os.environ.get(env_var) or default


def service_checkpoint(configured: Optional[str], env_var: str) -> Optional[str]:
    """An executor's checkpoint: the environment wins over the flow YAML (the precedence is
    written down in loupe.config)."""
    return os.environ.get(env_var) or configured


def resolve_device(device: str = 'auto') -> torch.device:
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} requested but CUDA is not available')
    return torch.device(device)


def resolve_dtype(device: torch.device, half: bool) -> torch.dtype:
    """Half precision only where it is fast and safe: on a GPU."""
    return torch.float16 if half and device.type == 'cuda' else torch.float32


def from_pretrained(cls, checkpoint: str, **kwargs):
    """``cls.from_pretrained`` with a loupe error naming the checkpoint when it fails."""
    try:
        return cls.from_pretrained(checkpoint, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(
            f'cannot load checkpoint {checkpoint!r} with {cls.__name__}: {e}. Give a hub id '
            f'(downloaded on first use) or a local folder made by save_pretrained.') from e


def choose(registry: dict, name: str, what: str):
    """Look ``name`` up in a registry dict; unknown names list the valid ones."""
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f'unknown {what} {name!r}; valid: {", ".join(sorted(registry))}') from None
