"""Tiny random checkpoints, for tests and for trying loupe on a machine without hub access.

Each builder saves a model and its processor with ``save_pretrained`` into a folder, so loupe
loads them through the same ``from_pretrained`` path as a real hub checkpoint. Their results are
random: they exercise the pipeline, not its quality. ``loupe tiny-models DIR`` builds them all.
"""
from pathlib import Path

import torch
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPTokenizer,
    Dinov2Config,
    Dinov2Model,
    BitImageProcessor,
    Owlv2Config,
    Owlv2ForObjectDetection,
    Owlv2ImageProcessor,
    Owlv2Processor,
    OwlViTConfig,
    OwlViTForObjectDetection,
    OwlViTImageProcessor,
    OwlViTProcessor,
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
    YolosConfig,
    YolosForObjectDetection,
    YolosImageProcessor,
)

from loupe.constants import ENV_CLIP_MODEL, ENV_DETECTOR_MODEL, ENV_DINO_MODEL, ENV_OWL_MODEL

COCO_NAMES = [
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
    'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone',
    'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
    'teddy bear', 'hair drier', 'toothbrush',
]


def _bytes_to_unicode():
    # GPT-2 / CLIP byte-level alphabet, so every string tokenizes without unknown tokens.
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1))
    bs += list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tiny_tokenizer() -> CLIPTokenizer:
    chars = _bytes_to_unicode()
    tokens = chars + [c + '</w>' for c in chars] + ['<|startoftext|>', '<|endoftext|>']
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[])


VOCAB_SIZE = 514
_TEXT = dict(vocab_size=VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
             num_attention_heads=2, max_position_embeddings=77, bos_token_id=512,
             eos_token_id=513, pad_token_id=513)
_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
               patch_size=16)


def _save(model, processor, path: Path) -> str:
    torch.manual_seed(0)
    model.eval()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


def build_clip(path: Path, image_size: int = 64, projection_dim: int = 16) -> str:
    torch.manual_seed(0)
    config = CLIPConfig(text_config=_TEXT, vision_config={**_VISION, 'image_size': image_size},
                        projection_dim=projection_dim)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={'shortest_edge': image_size},
                                           crop_size={'height': image_size, 'width': image_size}),
        tokenizer=tiny_tokenizer())
    return _save(CLIPModel(config), processor, path)


def build_owlvit(path: Path, image_size: int = 64) -> str:
    torch.manual_seed(0)
    # OWL-ViT needs projection_dim == the text hidden size.
    config = OwlViTConfig(text_config={**_TEXT, 'max_position_embeddings': 16},
                          vision_config={**_VISION, 'image_size': image_size}, projection_dim=32)
    size = {'height': image_size, 'width': image_size}
    processor = OwlViTProcessor(image_processor=OwlViTImageProcessor(size=size, crop_size=size),
                                tokenizer=tiny_tokenizer())
    return _save(OwlViTForObjectDetection(config), processor, path)


def build_owlv2(path: Path, image_size: int = 64) -> str:
    torch.manual_seed(0)
    config = Owlv2Config(text_config={**_TEXT, 'max_position_embeddings': 16},
                         vision_config={**_VISION, 'image_size': image_size}, projection_dim=32)
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size={'height': image_size, 'width': image_size}),
        tokenizer=tiny_tokenizer())
    return _save(Owlv2ForObjectDetection(config), processor, path)


def build_detector(path: Path, image_size: int = 64) -> str:
    """A tiny YOLOS: loads through AutoModelForObjectDetection like any COCO detector."""
    torch.manual_seed(0)
    config = YolosConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, image_size=[image_size, image_size], patch_size=16,
                         num_detection_tokens=20, id2label=dict(enumerate(COCO_NAMES)),
                         label2id={n: i for i, n in enumerate(COCO_NAMES)})
    processor = YolosImageProcessor(size={'shortest_edge': image_size,
                                          'longest_edge': image_size * 2})
    return _save(YolosForObjectDetection(config), processor, path)


def build_dino(path: Path, image_size: int = 64) -> str:
    """A tiny DINO-style ViT (the architecture of facebook/dino-vits16)."""
    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, image_size=image_size, patch_size=8)
    processor = ViTImageProcessor(size={'height': image_size, 'width': image_size})
    return _save(ViTModel(config, add_pooling_layer=False), processor, path)


def build_dinov2(path: Path, image_size: int = 56) -> str:
    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, image_size=image_size, patch_size=14)
    processor = BitImageProcessor(size={'shortest_edge': image_size},
                                  crop_size={'height': image_size, 'width': image_size})
    return _save(Dinov2Model(config), processor, path)


BUILDERS = {
    'clip': (build_clip, ENV_CLIP_MODEL),
    'owlvit': (build_owlvit, ENV_OWL_MODEL),
    'detector': (build_detector, ENV_DETECTOR_MODEL),
    'dino': (build_dino, ENV_DINO_MODEL),
}


def build_all(directory) -> dict:
    """Build one tiny model per role under ``directory``; returns {env variable: folder}."""
    directory = Path(directory).resolve()
    return {env: build(directory / name) for name, (build, env) in BUILDERS.items()}
