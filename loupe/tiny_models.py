"""Tiny random checkpoints, for tests and for trying loupe on a machine without hub access.

Each builder saves a model and its processor with ``save_pretrained`` into a folder, so loupe
loads them through the same ``from_pretrained`` path as a real hub checkpoint. Their results are
random: they exercise the pipeline, not its quality. ``loupe tiny-models DIR`` builds them all.
"""
import io
from pathlib import Path

import torch
from transformers import (
    AltCLIPConfig,
    AltCLIPModel,
    AltCLIPProcessor,
    BertTokenizer,
    ChineseCLIPConfig,
    ChineseCLIPImageProcessorPil,
    ChineseCLIPModel,
    ChineseCLIPProcessor,
    Siglip2Config,
    Siglip2ImageProcessorPil,
    Siglip2Model,
    Siglip2Processor,
    Siglip2Tokenizer,
    SiglipConfig,
    SiglipImageProcessorPil,
    SiglipModel,
    SiglipProcessor,
    SiglipTokenizer,
    XLMRobertaTokenizer,
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


# Lines in several scripts, so the multilingual tokenizers below cover Latin, CJK and Devanagari.
MULTILINGUAL_TEXT = [
    'a photo of a cat', 'two dogs playing in the snow', 'a red bicycle next to a tree',
    'ein Hund im Schnee', 'une voiture rouge dans la rue', 'un perro en la playa',
    '一只猫坐在沙发上', '雪地里玩耍的两只狗', '海边的红色自行车', '公園で遊ぶ子供たち',
    'समुद्र तट पर एक कुत्ता', 'पेड़ के पास लाल साइकिल', 'बर्फ में खेलते दो कुत्ते',
]


def _sentencepiece(vocab_size: int = 120, **options) -> bytes:
    """A tiny unigram sentencepiece model trained offline on MULTILINGUAL_TEXT (every character
    kept, so no script falls back to <unk>)."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(MULTILINGUAL_TEXT * 4), model_writer=out, vocab_size=vocab_size,
        character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2, **options)
    return out.getvalue()


def _siglip_tokenizer(path: Path) -> SiglipTokenizer:
    path.mkdir(parents=True, exist_ok=True)
    model_file = path / 'spiece.model'
    # SigLIP's ids: pad = eos = </s>, unk; no bos.
    model_file.write_bytes(_sentencepiece(unk_id=2, eos_id=1, bos_id=-1, pad_id=-1))
    return SiglipTokenizer(vocab_file=str(model_file))


def build_siglip(path: Path, image_size: int = 96, projection_dim: int = 32) -> str:
    """SigLIP (and SigLIP 2 at a fixed resolution, which is the same architecture): squashed
    resize to a square, text padded to the model's fixed length."""
    torch.manual_seed(0)
    tokenizer = _siglip_tokenizer(Path(path))
    text = {**_TEXT, 'vocab_size': len(tokenizer), 'max_position_embeddings': 16,
            'projection_size': projection_dim, 'hidden_size': projection_dim,
            'pad_token_id': 1, 'eos_token_id': 1, 'bos_token_id': None}
    config = SiglipConfig(text_config=text, vision_config={
        **_VISION, 'hidden_size': projection_dim, 'image_size': image_size})
    tokenizer.model_max_length = 16
    processor = SiglipProcessor(image_processor=SiglipImageProcessorPil(
        size={'height': image_size, 'width': image_size}), tokenizer=tokenizer)
    return _save(SiglipModel(config), processor, path)


def _byte_vocab() -> dict:
    """Gemma-style BPE vocabulary: specials, the 256 byte-fallback tokens, every character of
    MULTILINGUAL_TEXT (lower-cased) and the word marker."""
    tokens = ['<pad>', '<eos>', '<bos>', '<unk>', '<mask>'] + [f'<0x{b:02X}>' for b in range(256)]
    tokens += sorted({c for line in MULTILINGUAL_TEXT for c in line.lower().replace(' ', '▁')})
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def build_siglip2(path: Path, max_num_patches: int = 256, hidden: int = 32) -> str:
    """SigLIP 2 NaFlex: the image keeps its aspect ratio, resized to at most ``max_num_patches``
    patches (256, the processor's default, as the real checkpoints); the model gets the patches,
    their mask and the patch grid's shape."""
    torch.manual_seed(0)
    tokenizer = Siglip2Tokenizer(vocab=_byte_vocab(), merges=[])
    tokenizer.model_max_length = 16
    text = {**_TEXT, 'vocab_size': len(tokenizer), 'max_position_embeddings': 16,
            'projection_size': hidden, 'hidden_size': hidden,
            'pad_token_id': 0, 'eos_token_id': 1, 'bos_token_id': 2}
    config = Siglip2Config(text_config=text, vision_config={
        **_VISION, 'hidden_size': hidden, 'num_patches': max_num_patches})
    processor = Siglip2Processor(image_processor=Siglip2ImageProcessorPil(
        patch_size=16, max_num_patches=max_num_patches), tokenizer=tokenizer)
    return _save(Siglip2Model(config), processor, path)


def _char_wordpiece_vocab() -> dict:
    chars = sorted({c for line in MULTILINGUAL_TEXT for c in line.lower() if c != ' '})
    tokens = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + chars + [f'##{c}' for c in chars]
    return {t: i for i, t in enumerate(tokens)}


def build_chinese_clip(path: Path, image_size: int = 64, projection_dim: int = 16) -> str:
    """Chinese-CLIP: a BERT text tower (CLS token), squashed resize as the OFA-Sys checkpoints."""
    torch.manual_seed(0)
    tokenizer = BertTokenizer(vocab=_char_wordpiece_vocab())
    tokenizer.model_max_length = 24
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=24,
                pad_token_id=0)
    config = ChineseCLIPConfig(text_config=text, vision_config={
        **_VISION, 'image_size': image_size}, projection_dim=projection_dim)
    processor = ChineseCLIPProcessor(image_processor=ChineseCLIPImageProcessorPil(
        size={'height': image_size, 'width': image_size}, do_center_crop=False),
        tokenizer=tokenizer)
    return _save(ChineseCLIPModel(config), processor, path)


def build_altclip(path: Path, image_size: int = 64, projection_dim: int = 16) -> str:
    """AltCLIP: an XLM-R text tower (sentencepiece unigram vocabulary) beside a CLIP vision one."""
    import sentencepiece as spm

    torch.manual_seed(0)
    sp = spm.SentencePieceProcessor(model_proto=_sentencepiece())
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())
              if not (sp.is_control(i) or sp.is_unknown(i))]
    vocab = [('<s>', 0.0), ('<pad>', 0.0), ('</s>', 0.0), ('<unk>', 0.0)] + pieces
    tokenizer = XLMRobertaTokenizer(vocab=vocab + [('<mask>', 0.0)])
    tokenizer.model_max_length = 24
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=26,
                project_dim=projection_dim, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    config = AltCLIPConfig(text_config=text, vision_config={**_VISION, 'image_size': image_size},
                           projection_dim=projection_dim)
    processor = AltCLIPProcessor(
        image_processor=CLIPImageProcessor(size={'shortest_edge': image_size},
                                           crop_size={'height': image_size, 'width': image_size}),
        tokenizer=tokenizer)
    return _save(AltCLIPModel(config), processor, path)


# One tiny model per supported encoder family (loupe.families), for the exactness tests.
ENCODER_BUILDERS = {
    'clip': build_clip,
    'siglip': build_siglip,
    'siglip2': build_siglip2,
    'chinese_clip': build_chinese_clip,
    'altclip': build_altclip,
}


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
