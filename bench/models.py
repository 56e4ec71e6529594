"""Checkpoints for the benchmarks: full-size architectures with random weights, or tiny ones.

Random weights cost exactly what trained ones cost, so full-size CLIP ViT-B/32 (``CLIPConfig()``
defaults) and OWL-ViT B/32 at 768 (``OwlViTConfig()`` defaults) stand in for the real checkpoints,
which cannot be downloaded here. Each is built once with ``save_pretrained`` into a cache folder
and loaded by the code under test through ``from_pretrained``, like a hub checkpoint. The
tokenizer is the tiny byte-level one of the tests (one token per character, so a query costs a
few more text tokens than with CLIP's BPE vocabulary).
"""
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor,
                          OwlViTConfig, OwlViTForObjectDetection, OwlViTImageProcessor,
                          OwlViTProcessor)

from loupe.tiny_models import build_clip, build_owlvit, tiny_tokenizer

# The tiny tokenizer's special tokens; the text towers pool at its end-of-text token.
_TOKENS = dict(bos_token_id=512, eos_token_id=513, pad_token_id=513)


def _full_clip(path: Path) -> None:
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=_TOKENS)).eval()
    model.save_pretrained(path)
    CLIPProcessor(image_processor=CLIPImageProcessor(),
                  tokenizer=tiny_tokenizer()).save_pretrained(path)


def _full_owlvit(path: Path) -> None:
    torch.manual_seed(0)
    model = OwlViTForObjectDetection(OwlViTConfig(text_config=_TOKENS)).eval()
    model.save_pretrained(path)
    OwlViTProcessor(image_processor=OwlViTImageProcessor(),
                    tokenizer=tiny_tokenizer()).save_pretrained(path)


_BUILDERS = {
    ('clip', False): ('clip-vit-b32', _full_clip),
    ('clip', True): ('tiny-clip', build_clip),
    ('owl', False): ('owlvit-b32-768', _full_owlvit),
    ('owl', True): ('tiny-owlvit', build_owlvit),
}


def checkpoint(role: str, tiny: bool, models_dir: Path) -> str:
    """Folder of the ``role`` ('clip' or 'owl') checkpoint, built on first use."""
    name, build = _BUILDERS[(role, tiny)]
    path = Path(models_dir) / name
    if not (path / 'config.json').is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f'.{name}-', dir=path.parent))
        try:
            build(tmp)
            shutil.rmtree(path, ignore_errors=True)
            tmp.rename(path)  # atomic: a half-written folder is never taken for a checkpoint
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(path)
