"""CPU cost per image of each recommended checkpoint's architecture (random weights).

For each checkpoint of ``loupe.catalogue``, a random-weight model of the same architecture (the
configuration below, written after the checkpoint's own config.json) is embedded through
``Embedder.forward_images`` on preprocessed photos: fp32, torch's threads, batch 4, best of the
timed passes. It also counts the parameters and reads the embedding size, which the catalogue
quotes. The weights are random, so only the cost means anything.
"""
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

NAME = 'families'
COLUMNS = ['checkpoint', 'family', 'parameters_m', 'embedding', 'input_px',
           'cpu_ms_per_image']

_VIT_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                num_attention_heads=16, patch_size=14, image_size=224)
_SO400M = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
               num_attention_heads=16)
_GEMMA_VOCAB = 256000  # SigLIP 2's Gemma tokenizer


def _architectures() -> dict:
    """hub id -> (model class, config): each checkpoint's architecture at full size."""
    from transformers import (AltCLIPConfig, AltCLIPModel, ChineseCLIPConfig, ChineseCLIPModel,
                              CLIPConfig, CLIPModel, Siglip2Config, Siglip2Model, SiglipConfig,
                              SiglipModel)

    clip_b32 = (CLIPModel, CLIPConfig())
    return {
        'openai/clip-vit-base-patch32': clip_b32,
        'facebook/metaclip-b32-400m': clip_b32,
        'google/siglip2-base-patch16-256': (SiglipModel, SiglipConfig(
            text_config={'vocab_size': _GEMMA_VOCAB},
            vision_config={'image_size': 256, 'patch_size': 16})),
        'google/siglip2-base-patch16-naflex': (Siglip2Model, Siglip2Config(
            text_config={'vocab_size': _GEMMA_VOCAB})),
        'google/siglip2-so400m-patch14-384': (SiglipModel, SiglipConfig(
            text_config={**_SO400M, 'vocab_size': _GEMMA_VOCAB, 'projection_size': 1152},
            vision_config={**_SO400M, 'patch_size': 14, 'image_size': 384})),
        'OFA-Sys/chinese-clip-vit-base-patch16': (ChineseCLIPModel, ChineseCLIPConfig(
            text_config={'vocab_size': 21128}, vision_config={'patch_size': 16},
            projection_dim=512)),
        'BAAI/AltCLIP': (AltCLIPModel, AltCLIPConfig(
            text_config={'vocab_size': 250002, 'hidden_size': 1024, 'num_hidden_layers': 24,
                         'num_attention_heads': 16, 'intermediate_size': 4096,
                         'project_dim': 768},
            vision_config=_VIT_L14, projection_dim=768)),
    }


def _processor(family: str, input_px: int):
    """An image processor configured as the family's checkpoints are (only the image path is
    timed, so no tokenizer is needed)."""
    from transformers import (ChineseCLIPImageProcessorPil, CLIPImageProcessorPil,
                              Siglip2ImageProcessorPil, SiglipImageProcessorPil)

    square = {'height': input_px, 'width': input_px}
    if family == 'siglip2':
        return Siglip2ImageProcessorPil(patch_size=16, max_num_patches=256)
    if family == 'siglip':
        return SiglipImageProcessorPil(size=square)
    if family == 'chinese_clip':
        return ChineseCLIPImageProcessorPil(size=square, do_center_crop=False)
    return CLIPImageProcessorPil(size={'shortest_edge': input_px}, crop_size=square)


def _save_random(model_cls, config, family: str, folder: Path) -> str:
    """A loadable checkpoint folder (weights + image processor + a tiny tokenizer)."""
    import torch

    from loupe.tiny_models import ENCODER_BUILDERS

    # The tokenizer of the family's tiny model: loading needs one; its vocabulary does not
    # change the image tower's cost.
    tiny = Path(ENCODER_BUILDERS[family](folder / 'tokenizer-donor'))
    torch.manual_seed(0)
    model = model_cls(config).eval()
    model.save_pretrained(folder / 'model')
    from transformers import AutoProcessor

    donor = AutoProcessor.from_pretrained(tiny, backend='pil')
    vision = config.vision_config
    input_px = getattr(vision, 'image_size', 256)
    processor = type(donor)(image_processor=_processor(family, input_px),
                            tokenizer=donor.tokenizer)
    processor.save_pretrained(folder / 'model')
    count = sum(p.numel() for p in model.parameters())
    del model
    gc.collect()
    return str(folder / 'model'), count, input_px


def measure_one(hub_id: str, model_cls, config, family: str, folder: Path, images,
                batch_size: int, repeat: int) -> dict:
    from loupe.embedder import Embedder

    path, count, input_px = _save_random(model_cls, config, family, folder)
    embedder = Embedder(path, device='cpu', batch_size=batch_size)
    inputs = embedder.preprocess(images[:batch_size])
    embedder.forward_images(inputs)  # warm up
    best = min(common.timed(embedder.forward_images, inputs)[1] for _ in range(repeat))
    dim = int(embedder.forward_images({k: v[:1] for k, v in inputs.items()}).shape[1])
    del embedder
    gc.collect()
    return {'checkpoint': hub_id, 'family': family, 'parameters_m': round(count / 1e6),
            'embedding': dim, 'input_px': embedder_input(family, input_px),
            'cpu_ms_per_image': 1000 * best / len(images[:batch_size])}


def embedder_input(family: str, input_px: int) -> str:
    return 'NaFlex, 256 patches' if family == 'siglip2' else str(input_px)


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--only', nargs='*', help='hub ids to measure (default all)')
    p.add_argument('--repeat', type=int, help='timed passes (default 2)')
    p.add_argument('--count-only', nargs='*', default=[],
                   help='hub ids whose parameters are counted (on the meta device) but whose '
                        'cost is not timed (too slow for the machine at hand)')
    args = p.parse_args(argv)
    import shutil

    from loupe.families import FAMILIES
    from loupe.images import decode

    started = time.perf_counter()
    repeat = args.repeat or (1 if args.smoke else 2)
    batch_size = 2 if args.smoke else 4
    images = [decode(f.read_bytes()).image for f in common.image_files(args, batch_size)]
    if args.smoke:  # each family's tiny model stands in for its checkpoints
        from loupe import tiny_models

        work = {f'tiny-{name}': (None, None) for name in tiny_models.ENCODER_BUILDERS}
    else:
        work = _architectures()
    rows = []
    for hub_id, (model_cls, config) in work.items():
        if args.only and hub_id not in args.only:
            continue
        if hub_id in args.count_only:
            rows.append(_count_only(hub_id, model_cls, config, FAMILIES))
            continue
        folder = Path(tempfile.mkdtemp(prefix='family-', dir=common.cache_dir(args)))
        try:
            if model_cls is None:
                rows.append(_measure_tiny(hub_id, folder, images, batch_size, repeat))
            else:
                family = _family_of(config, FAMILIES)
                rows.append(measure_one(hub_id, model_cls, config, family, folder, images,
                                        batch_size, repeat))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    notes = ['random weights: only the cost means anything; fp32, batch %d, image tower only'
             % batch_size]
    return common.finish(NAME, args, {'seconds': round(time.perf_counter() - started, 1)},
                         rows, COLUMNS, notes)


def _count_only(hub_id: str, model_cls, config, families) -> dict:
    import torch

    with torch.device('meta'):
        model = model_cls(config)
    family = _family_of(config, families)
    vision = config.vision_config
    dim = getattr(config, 'projection_dim', None) or vision.hidden_size
    return {'checkpoint': hub_id, 'family': family,
            'parameters_m': round(sum(p.numel() for p in model.parameters()) / 1e6),
            'embedding': dim, 'input_px': embedder_input(family, getattr(vision, 'image_size', 256)),
            'cpu_ms_per_image': None}


def _family_of(config, families) -> str:
    return next(f.name for f in families.values() if config.model_type in f.model_types)


def _measure_tiny(name: str, folder: Path, images, batch_size: int, repeat: int) -> dict:
    from loupe.embedder import Embedder
    from loupe.tiny_models import ENCODER_BUILDERS

    family = name[len('tiny-'):]
    embedder = Embedder(ENCODER_BUILDERS[family](folder), device='cpu')
    inputs = embedder.preprocess(images[:batch_size])
    best = min(common.timed(embedder.forward_images, inputs)[1] for _ in range(repeat))
    return {'checkpoint': name, 'family': family,
            'parameters_m': sum(p.numel() for p in embedder.model.parameters()) / 1e6,
            'embedding': embedder.dim, 'input_px': embedder.input_size,
            'cpu_ms_per_image': 1000 * best / len(images[:batch_size])}


if __name__ == '__main__':
    main()
