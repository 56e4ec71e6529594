"""Every supported dual-encoder family equals its reference pipeline (processor + model)."""
import logging

import numpy as np
import pytest
import torch
from conftest import jpeg_bytes, synthetic_image
from transformers import AutoModel, AutoProcessor

from loupe import precision as precisions
from loupe.embedder import Embedder, draft_min_side
from loupe.errors import ModelLoadError
from loupe.images import decode
from loupe.prefetch import prefetch
from loupe.tiny_models import ENCODER_BUILDERS

# Latin, German, CJK (Chinese, Japanese), Devanagari, and a one-letter text.
TEXTS = ['a photo of a cat', 'ein Hund im Schnee', '一只猫坐在沙发上', '公園で遊ぶ子供たち',
         'समुद्र तट पर एक कुत्ता', 'x']
# What each tiny model (loupe/tiny_models.py) is built with: the reference truncates texts to
# the model's positions, the vision tower sees this many pixels on the shorter side.
MAX_TOKENS = {'clip': 77, 'siglip': 16, 'siglip2': 16, 'chinese_clip': 24, 'altclip': 24}
INPUT_SIZE = {'clip': 64, 'siglip': 96, 'siglip2': 256, 'chinese_clip': 64, 'altclip': 64}
FAMILIES = list(ENCODER_BUILDERS)
PAD_TO_MAX = {'siglip', 'siglip2'}


@pytest.fixture(scope='module', params=FAMILIES)
def family(request, models_dir):
    name = request.param
    path = models_dir / f'family-{name}'
    if not (path / 'config.json').is_file():
        ENCODER_BUILDERS[name](path)
    return name, str(path)


@pytest.fixture(scope='module')
def embedder(family) -> Embedder:
    return Embedder(family[1], batch_size=4, device='cpu')


@pytest.fixture(scope='module')
def reference(family):
    """transformers' own pipeline: AutoProcessor (PIL) + the model's forward -> normalised
    text_embeds / image_embeds, with the text padding the family's reference code uses."""
    name, path = family
    processor = AutoProcessor.from_pretrained(path, backend='pil')
    model = AutoModel.from_pretrained(path).eval()
    padding = 'max_length' if name in PAD_TO_MAX else True

    def run(texts, images, padding=padding):
        inputs = processor(text=texts, images=images, padding=padding, truncation=True,
                           max_length=MAX_TOKENS[name], return_tensors='pt')
        with torch.inference_mode():
            out = model(**inputs)
        return out.text_embeds.numpy(), out.image_embeds.numpy()
    return run


def synthetic_images():
    # Landscape, portrait with odd margins, a small square, a very wide strip.
    sizes = [(320, 240), (65, 199), (64, 64), (20, 30), (400, 50)]
    return [synthetic_image(w, h, seed=i) for i, (w, h) in enumerate(sizes)]


@pytest.fixture(params=['synthetic', 'coco128'])
def photos(request) -> list:
    if request.param == 'synthetic':
        return synthetic_images()
    paths = request.getfixturevalue('coco_images')[:5]
    return [decode(p.read_bytes()).image for p in paths]


def test_embeddings_equal_reference_pipeline(family, embedder, reference, photos):
    ref_texts, ref_images = reference(TEXTS, photos)
    assert embedder.family.name == family[0]
    np.testing.assert_allclose(embedder.embed_texts(TEXTS), ref_texts, atol=1e-5)
    np.testing.assert_allclose(embedder.embed_images(photos), ref_images, atol=1e-5)
    assert embedder.dim == ref_texts.shape[1]


def test_long_text_is_truncated_like_reference(embedder, reference):
    texts = ['a cat and 一只猫 ' * 40, 'short']
    ref_texts, _ = reference(texts, synthetic_images()[:1])
    assert embedder.max_text_tokens == MAX_TOKENS[embedder.family.name]
    np.testing.assert_allclose(embedder.embed_texts(texts), ref_texts, atol=1e-5)


def test_siglip_texts_are_padded_to_the_fixed_length(family, embedder, reference):
    """SigLIP was trained on max_length padding: padding to the longest text gives another
    embedding, so loupe must pad as the reference does (the equality test then holds)."""
    if family[0] not in PAD_TO_MAX:
        pytest.skip('only SigLIP families pad to a fixed length')
    ref_max, _ = reference(['a cat'], synthetic_images()[:1])
    ref_longest, _ = reference(['a cat'], synthetic_images()[:1], padding='longest')
    assert np.abs(ref_max - ref_longest).max() > 1e-3
    np.testing.assert_allclose(embedder.embed_texts(['a cat']), ref_max, atol=1e-5)


def test_fast_preprocessing_only_where_proven(family, embedder):
    """The fixed-grid processors use loupe's own resize (proven equal above); NaFlex's patching
    goes through its processor."""
    assert (embedder._pixels is None) == (family[0] == 'siglip2')


def test_naflex_keeps_aspect_ratio_with_variable_patch_counts(family, embedder):
    if family[0] != 'siglip2':
        pytest.skip('NaFlex only')
    wide, tall = synthetic_image(400, 50, seed=1), synthetic_image(60, 200, seed=2)
    inputs = embedder.preprocess([wide, tall])
    shapes = inputs['spatial_shapes'].tolist()
    assert shapes[0][1] > shapes[0][0] and shapes[1][0] > shapes[1][1]  # (rows, cols) follow
    assert inputs['pixel_attention_mask'].sum(1).tolist() == [r * c for r, c in shapes]
    # Padding patches of a batch are masked: each image alone embeds the same.
    together = embedder.embed_images([wide, tall])
    alone = np.concatenate([embedder.embed_images([wide]), embedder.embed_images([tall])])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_grid_regions_at_the_family_input_size(family, embedder):
    width, height = 1200, 900
    decoded = embedder.decode(jpeg_bytes(synthetic_image(width, height)))
    assert embedder.input_size == INPUT_SIZE[family[0]]
    assert min(decoded.image.size) >= INPUT_SIZE[family[0]]
    xs, ys = np.linspace(0, width, 4), np.linspace(0, height, 4)
    boxes = [[xs[i], ys[j], xs[i + 1], ys[j + 1]] for j in range(3) for i in range(3)]
    regions = embedder.embed_regions(decoded, boxes, batch_size=4)
    crops = embedder.embed_images([decoded.crop(box) for box in boxes], batch_size=9)
    np.testing.assert_allclose(regions, crops, atol=1e-5)
    assert regions.shape == (9, embedder.dim)


@pytest.mark.parametrize('box_in_inputs', [None, 3])
def test_draft_decoding_scale_comes_from_the_family_input_size(family, embedder, box_in_inputs):
    """A JPEG decodes at reduced size exactly as far as its smallest box (here the whole image,
    or a box 3 input sizes wide) keeps the family's input size."""
    width, height, size = 2400, 1600, INPUT_SIZE[family[0]]
    box_side = height if box_in_inputs is None else box_in_inputs * size
    boxes = None if box_in_inputs is None else [[0, 0, width, height],
                                                 [100, 100, 100 + box_side, 100 + box_side]]
    decoded = embedder.decode(jpeg_bytes(synthetic_image(width, height)), boxes)
    assert min(decoded.image.size) >= draft_min_side(size, width, height, boxes)
    assert decoded.image.width < width  # reduced where it can be
    # ...and as far as it can: the next halving (JPEG draft goes down to 1/8) would be too small.
    assert size <= box_side / decoded.scale_x
    assert box_side / decoded.scale_x < 2 * size or decoded.scale_x == 8


def test_non_dual_encoder_checkpoint_is_refused(tiny_dino):
    with pytest.raises(ModelLoadError, match='not a dual-encoder image-text checkpoint'):
        Embedder(tiny_dino, device='cpu')


# -- precision -------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def clip_path(models_dir) -> str:
    path = models_dir / 'family-clip'
    if not (path / 'config.json').is_file():
        ENCODER_BUILDERS['clip'](path)
    return str(path)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def test_int8_quantises_the_linear_layers_and_stays_close(clip_path):
    fp32 = Embedder(clip_path, device='cpu')
    int8 = Embedder(clip_path, device='cpu', precision='int8')
    assert int8.precision == 'int8'
    kinds = {type(m) for m in int8.model.modules()}
    assert torch.ao.nn.quantized.dynamic.Linear in kinds and torch.nn.Linear not in kinds
    images = synthetic_images()
    assert _cosines(fp32.embed_images(images), int8.embed_images(images)).min() > 0.95
    assert _cosines(fp32.embed_texts(TEXTS), int8.embed_texts(TEXTS)).min() > 0.95
    assert not np.allclose(fp32.embed_images(images), int8.embed_images(images), atol=1e-6)


def test_bf16_autocast_where_the_cpu_has_it(clip_path, monkeypatch):
    monkeypatch.setattr(precisions, 'cpu_has_native_bf16', lambda: True)
    fp32 = Embedder(clip_path, device='cpu')
    bf16 = Embedder(clip_path, device='cpu', precision='bf16')
    assert bf16.precision == 'bf16'
    images = synthetic_images()
    a, b = fp32.embed_images(images), bf16.embed_images(images)
    assert b.dtype == np.float32 and _cosines(a, b).min() > 0.99
    assert not np.allclose(a, b, atol=1e-6)  # it did run in bf16


def test_bf16_without_native_support_falls_back_to_fp32_and_says_so(clip_path, monkeypatch,
                                                                    caplog):
    monkeypatch.setattr(precisions, 'cpu_has_native_bf16', lambda: False)
    with caplog.at_level(logging.WARNING):
        embedder = Embedder(clip_path, device='cpu', precision='bf16')
    assert embedder.precision == 'fp32' and 'no native bf16' in caplog.text


@pytest.mark.parametrize('precision, message', [('fp16', 'needs a GPU'),
                                                ('double', 'valid: fp32, fp16, bf16, int8')])
def test_unusable_precision_is_a_clear_error(clip_path, precision, message):
    with pytest.raises(ValueError, match=message):
        Embedder(clip_path, device='cpu', precision=precision)


# -- prefetch --------------------------------------------------------------------------------

def test_prefetch_keeps_order_and_raises_the_producers_error():
    assert list(prefetch(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        raise OSError('disk gone')
    out = []
    with pytest.raises(OSError, match='disk gone'):
        for item in prefetch(failing()):
            out.append(item)
    assert out == [1]


def test_prefetch_stops_the_producer_when_the_consumer_stops():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1
    for item in prefetch(endless(), depth=2):
        if item == 3:
            break
    count = len(produced)
    assert count <= 3 + 1 + 2 + 1  # consumed + in the queue + one being put
    assert len(produced) == count  # and it does not go on


# -- catalogue -------------------------------------------------------------------------------

def test_catalogue_names_a_source_for_every_figure_and_a_known_family():
    from loupe import catalogue
    from loupe.families import FAMILIES

    assert {c.family for c in catalogue.CHECKPOINTS} == set(FAMILIES)  # every family covered
    for c in catalogue.CHECKPOINTS:
        for r in c.retrieval:
            assert r.source and 0 < r.text_to_image <= 100 and 0 < r.image_to_text <= 100
    table = catalogue.markdown()
    assert all(f'`{c.hub_id}`' in table for c in catalogue.CHECKPOINTS)
    assert all(r.source in table for c in catalogue.CHECKPOINTS for r in c.retrieval)


def test_loupe_models_lists_families_and_checkpoints(capsys):
    import json

    from loupe.cli import main

    assert main(['models', '--json']) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out['families']) == set(ENCODER_BUILDERS)
    assert 'google/siglip2-base-patch16-naflex' in {c['hub_id'] for c in out['checkpoints']}


# -- decode workers and the GPU benchmark ----------------------------------------------------

def test_decode_workers_give_the_same_embeddings_in_order(clip_path):
    from executors.clip_encoder.executor import ClipEncoder

    from loupe.prefetch import ordered_map
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        assert list(ordered_map(lambda x: x * x, iter(range(40)), pool, window=4)) == [
            x * x for x in range(40)]
    images = synthetic_images() * 3
    one, three = Embedder(clip_path, device='cpu'), Embedder(clip_path, device='cpu', workers=3)
    np.testing.assert_allclose(three.embed_images(images, batch_size=4),
                               one.embed_images(images, batch_size=4), atol=1e-6)
    with pytest.raises(ValueError, match='workers'):
        Embedder(clip_path, device='cpu', workers=0)


def test_gpu_benchmark_without_cuda_says_so_and_measures_nothing(clip_path, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip('a CUDA device is present: the gpu-marked test runs the benchmark')
    from bench import gpu

    out = gpu.main(['--smoke', '--json', str(tmp_path / 'gpu.json'), '--clip-model', clip_path,
                    '--work', str(tmp_path / 'work')])
    assert out['rows'] == [] and 'no CUDA device' in out['skipped']
    assert 'no CUDA device' in capsys.readouterr().out


@pytest.mark.parametrize('device', [
    'cpu', pytest.param('cuda', marks=[pytest.mark.gpu, pytest.mark.skipif(
        not torch.cuda.is_available(), reason='needs a CUDA device')])])
def test_gpu_benchmark_smoke_run(clip_path, tmp_path, device):
    """The benchmark's three paths (bare, embedder, index flow) run; on a CPU in fp32, so the
    command is known to work before a GPU is lent."""
    from bench import gpu

    out = gpu.main(['--smoke', '--json', str(tmp_path / 'gpu.json'), '--clip-model', clip_path,
                    '--work', str(tmp_path / 'work'), '--device', device])
    assert [r['variant'] for r in out['rows']] == ['bare', 'embedder', 'flow']
    assert all(r['images_per_s'] > 0 for r in out['rows'])


# -- ONNX Runtime backend --------------------------------------------------------------------

@pytest.mark.parametrize('family_name', ['clip', 'siglip', 'chinese_clip'])
def test_onnx_backend_equals_torch_in_fp32_and_stays_close_in_int8(family_name, models_dir,
                                                                   tmp_path, monkeypatch):
    monkeypatch.setenv('LOUPE_ONNX_CACHE', str(tmp_path / 'onnx'))
    path = models_dir / f'family-{family_name}'
    if not (path / 'config.json').is_file():
        ENCODER_BUILDERS[family_name](path)
    images = synthetic_images()
    torch_fp32 = Embedder(str(path), device='cpu')
    onnx_fp32 = Embedder(str(path), device='cpu', backend='onnx')
    onnx_int8 = Embedder(str(path), device='cpu', backend='onnx', precision='int8')
    reference = torch_fp32.embed_images(images)
    np.testing.assert_allclose(onnx_fp32.embed_images(images), reference, atol=1e-5)
    int8 = onnx_int8.embed_images(images)
    assert not np.allclose(int8, reference, atol=1e-6)  # it did quantise
    if family_name == 'clip':  # tiny widths quantise worse than full size; see bench/encoder.py
        assert _cosines(int8, reference).min() > 0.95
    np.testing.assert_allclose(onnx_int8.embed_texts(TEXTS), torch_fp32.embed_texts(TEXTS),
                               atol=1e-6)  # texts stay on torch, fp32
    assert len(list((tmp_path / 'onnx').rglob('*.onnx'))) == 2  # exported once, then reused
    Embedder(str(path), device='cpu', backend='onnx')
    assert len(list((tmp_path / 'onnx').rglob('*.onnx'))) == 2


def test_onnx_backend_refuses_what_it_cannot_run(models_dir, clip_path):
    path = models_dir / 'family-siglip2'
    if not (path / 'config.json').is_file():
        ENCODER_BUILDERS['siglip2'](path)
    with pytest.raises(ValueError, match='fixed input size'):
        Embedder(str(path), device='cpu', backend='onnx')
    with pytest.raises(ValueError, match='valid: torch, onnx'):
        Embedder(clip_path, device='cpu', backend='tensorrt')


# -- the rest of loupe with another family ---------------------------------------------------

def test_eval_captions_runs_with_a_multilingual_family(models_dir, tmp_path):
    import json

    from PIL import Image

    from loupe.evaluation.captions import evaluate_captions
    from loupe.evaluation.datasets import load_captions

    root = tmp_path / 'flickr'
    (root / 'flickr30k-images').mkdir(parents=True)
    items = []
    for i in range(4):
        Image.new('RGB', (48, 32), (60 * i, 90, 40)).save(root / 'flickr30k-images' / f'{i}.png')
        items.append({'filename': f'{i}.png', 'split': 'test',
                      'sentences': [{'raw': TEXTS[(i + j) % len(TEXTS)]} for j in range(2)]})
    (root / 'dataset_flickr30k.json').write_text(json.dumps({'images': items}))
    path = models_dir / 'family-siglip2'
    if not (path / 'config.json').is_file():
        ENCODER_BUILDERS['siglip2'](path)
    result = evaluate_captions(load_captions(root), Embedder(str(path), device='cpu'))
    assert (result['images'], result['captions'], result['failed']) == (4, 8, [])
    assert all(0 <= v <= 1 for v in result['text_to_image'].values())


def test_index_search_and_rerank_through_the_service_with_siglip2(models_dir, tiny_owlvit,
                                                                   tmp_path, monkeypatch):
    from conftest import synthetic_image as photo

    from loupe.client import Loupe
    from loupe.constants import ENV_CLIP_MODEL, ENV_OWL_MODEL, ENV_WORKSPACE

    path = models_dir / 'family-siglip2'
    if not (path / 'config.json').is_file():
        ENCODER_BUILDERS['siglip2'](path)
    monkeypatch.setenv(ENV_CLIP_MODEL, str(path))
    monkeypatch.setenv(ENV_OWL_MODEL, tiny_owlvit)
    monkeypatch.setenv(ENV_WORKSPACE, str(tmp_path / 'workspace'))
    pictures = [jpeg_bytes(photo(400, 300, seed=s)) for s in range(3)]
    with Loupe.local('serve') as client:
        report = client.index(pictures)
        results = client.search('समुद्र तट पर एक कुत्ता', limit=3, rerank=True)
    assert len(report.indexed) == 3 and not report.errors
    assert len(results) == 3 and all('rerank' in r.scores for r in results)
    for r in results:
        x1, y1, x2, y2 = r.highlight
        assert 0 <= x1 < x2 <= 400 and 0 <= y1 < y2 <= 300
