"""Numeric precision of an encoder: fp32, fp16 / bf16 on a GPU, bf16 autocast or int8 on a CPU.

- ``fp32``: the reference; the default.
- ``fp16``: weights in half precision; GPU only (a CPU has no fast fp16 matmul).
- ``bf16``: on a GPU weights in bfloat16; on a CPU bfloat16 autocast, only where the CPU has
  native bf16 instructions (AVX512-BF16 / AMX on x86, BF16 on ARM): elsewhere it is emulated,
  slower than fp32, so loupe falls back to fp32 and says so in the log.
- ``int8``: dynamic quantisation of the linear layers (weights int8, activations quantised per
  batch), CPU only. Random weights show little loss; trained checkpoints have activation outliers
  and lose more, so confirm retrieval with ``loupe eval captions`` before relying on it.
"""
import contextlib
import logging
import platform
import warnings
from functools import lru_cache
from typing import Callable, ContextManager, Tuple

import torch

from loupe.constants import PRECISIONS

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """From the CPU's feature flags (Linux); False where they cannot be read."""
    try:
        with open('/proc/cpuinfo') as f:
            text = f.read()
    except OSError:
        return False
    words = set(text.split())
    if platform.machine().lower() in ('aarch64', 'arm64'):
        return 'bf16' in words
    return bool(words & {'avx512_bf16', 'amx_bf16'})


def check(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f'unknown precision {precision!r}; valid: {", ".join(PRECISIONS)}')
    return precision


def effective(precision: str, device: torch.device) -> str:
    """What ``precision`` becomes on ``device``: bf16 without native support runs as fp32."""
    check(precision)
    on_gpu = device.type == 'cuda'
    if precision == 'fp16' and not on_gpu:
        raise ValueError('precision fp16 needs a GPU; on a CPU use int8 (or bf16 where the CPU '
                         'has native bf16)')
    if precision == 'int8' and on_gpu:
        raise ValueError('precision int8 is for CPUs; on a GPU use fp16 or bf16')
    if precision == 'bf16' and not on_gpu and not cpu_has_native_bf16():
        log.warning('precision bf16 asked for, but this CPU has no native bf16 instructions '
                    '(it would be slower than fp32): using fp32')
        return 'fp32'
    return precision


def load_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype to load the weights in."""
    if device.type == 'cuda' and precision in ('fp16', 'bf16'):
        return torch.float16 if precision == 'fp16' else torch.bfloat16
    return torch.float32


def apply(model: torch.nn.Module, precision: str,
          device: torch.device) -> Tuple[torch.nn.Module, Callable[[], ContextManager]]:
    """The model to run and the context to run it in, for an ``effective`` precision."""
    if precision == 'int8':
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # torch.ao's migration notice, printed per layer
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                           dtype=torch.qint8, inplace=True)
        return model, contextlib.nullcontext
    if precision == 'bf16' and device.type == 'cpu':
        return model, lambda: torch.autocast('cpu', dtype=torch.bfloat16)
    return model, contextlib.nullcontext
