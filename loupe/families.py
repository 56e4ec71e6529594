"""Dual-encoder image-text model families: how each one's reference pipeline feeds the model.

The model itself is loaded with ``AutoModel`` and embeds through its own ``get_text_features`` /
``get_image_features``; what differs between families is only how the reference pipeline
(processor + model) prepares text, and how large an input the vision tower sees.
"""
import math
from dataclasses import dataclass
from typing import Tuple

from loupe.errors import ModelLoadError


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    model_types: Tuple[str, ...]  # ``config.model_type`` values of this family
    # SigLIP and SigLIP 2 were trained on texts padded to the model's fixed length and their
    # reference pipeline pads so ("max_length"); a shorter padding changes the embedding.
    pad_to_max_length: bool = False
    # RoBERTa-style position ids start after the padding index: max_position_embeddings - 2
    # tokens fit (AltCLIP's XLM-R text tower).
    position_offset: int = 0


FAMILIES = {f.name: f for f in [
    Family('clip', 'CLIP (OpenAI CLIP, OpenCLIP/LAION, MetaCLIP)', ('clip',)),
    Family('siglip', 'SigLIP, and SigLIP 2 at a fixed resolution', ('siglip',),
           pad_to_max_length=True),
    Family('siglip2', 'SigLIP 2 NaFlex (native aspect ratio, variable patch count)', ('siglip2',),
           pad_to_max_length=True),
    Family('chinese_clip', 'Chinese-CLIP', ('chinese_clip',)),
    Family('altclip', 'AltCLIP (multilingual XLM-R text tower)', ('altclip',), position_offset=2),
]}
_BY_MODEL_TYPE = {t: f for f in FAMILIES.values() for t in f.model_types}
# Any other model with both feature methods is used as it comes (CLIP-like text handling).
GENERIC = Family('generic', 'other dual encoder', ())


def family_of(model, checkpoint: str) -> Family:
    """The family of a loaded model; a model without both feature methods is refused."""
    if not (hasattr(model, 'get_text_features') and hasattr(model, 'get_image_features')):
        raise ModelLoadError(
            f'{checkpoint!r} is not a dual-encoder image-text checkpoint ({type(model).__name__} '
            f'has no get_text_features / get_image_features); supported families: '
            f'{", ".join(FAMILIES)}')
    return _BY_MODEL_TYPE.get(model.config.model_type, GENERIC)


def max_text_tokens(family: Family, model, tokenizer) -> int:
    """Tokens a text is truncated to: the model's positions (less any offset), or the
    tokenizer's limit when that is smaller."""
    positions = model.config.text_config.max_position_embeddings - family.position_offset
    return min(tokenizer.model_max_length, positions)


def input_size(image_processor, processor_defaults: dict) -> int:
    """Pixels on the shorter side that the vision tower sees of a whole image.

    NaFlex keeps the aspect ratio within ``max_num_patches`` patches, so the shorter side is at
    most sqrt(max_num_patches) patches; the processor's defaults win over its image processor's,
    as in the reference pipeline."""
    settings = {**vars(image_processor), **processor_defaults}
    if settings.get('max_num_patches'):
        return math.ceil(math.sqrt(settings['max_num_patches'])) * settings['patch_size']
    ip = image_processor
    if getattr(ip, 'do_center_crop', False) and ip.crop_size and ip.crop_size.height:
        return min(ip.crop_size.height, ip.crop_size.width)
    size = ip.size
    if size.shortest_edge:
        return size.shortest_edge
    return min(size.height, size.width)
