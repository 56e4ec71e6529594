"""Encoder with a CLIP checkpoint: equal to the reference pipeline; regions, draft decoding, executor."""
import io

import numpy as np
import pytest
import torch
from conftest import jpeg_bytes, synthetic_image
from docarray import DocList
from jina import Flow
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

from executors.clip_encoder.executor import ClipEncoder
from loupe.constants import (DEFAULT_CLIP_MODEL, ENV_CLIP_MODEL, KIND_GRID, KIND_WHOLE,
                             STATUS_ERROR)
from loupe.embedder import Embedder, draft_min_side
from loupe.errors import InvalidRequestError, ModelLoadError
from loupe.images import decode
from loupe.models import resolve_checkpoint
from loupe.schema import Chunk, ImageDoc

TEXTS = ['a photo of a cat', 'two dogs playing in the snow', 'x', 'a red square']
PROJECTION_DIM = 16  # loupe/tiny_models.build_clip
INPUT_SIZE = 64


@pytest.fixture(scope='module')
def embedder(tiny_clip) -> Embedder:
    return Embedder(tiny_clip, batch_size=4, device='cpu')


@pytest.fixture(scope='module')
def encoder(tiny_clip) -> ClipEncoder:
    return ClipEncoder(model=tiny_clip, batch_size=4, device='cpu')


@pytest.fixture(scope='module')
def reference(tiny_clip):
    """transformers' own pipeline: CLIPProcessor + CLIPModel.forward -> normalised embeds."""
    processor = CLIPProcessor.from_pretrained(tiny_clip, backend='pil')
    model = CLIPModel.from_pretrained(tiny_clip).eval()

    def run(texts, images, **text_kwargs):
        inputs = processor(text=texts, images=images, padding=True, return_tensors='pt',
                           **text_kwargs)
        with torch.inference_mode():
            out = model(**inputs)
        return out.text_embeds.numpy(), out.image_embeds.numpy()
    return run


def synthetic_images():
    # Landscape, portrait with odd crop margins, exactly the input size, smaller than it.
    sizes = [(320, 240), (65, 199), (INPUT_SIZE, INPUT_SIZE), (20, 30)]
    return [synthetic_image(w, h, seed=i) for i, (w, h) in enumerate(sizes)]


@pytest.fixture(params=['synthetic', 'coco128'])
def photos(request) -> list:
    if request.param == 'synthetic':
        return synthetic_images()
    paths = request.getfixturevalue('coco_images')[:4]
    return [decode(p.read_bytes()).image for p in paths]


def grid_boxes(width: int, height: int, n: int = 3) -> np.ndarray:
    xs, ys = np.linspace(0, width, n + 1), np.linspace(0, height, n + 1)
    return np.array([[xs[i], ys[j], xs[i + 1], ys[j + 1]] for j in range(n) for i in range(n)],
                    dtype=np.float32)


def test_embeddings_equal_reference_pipeline(embedder, reference, photos):
    ref_texts, ref_images = reference(TEXTS, photos)
    np.testing.assert_allclose(embedder.embed_texts(TEXTS), ref_texts, atol=1e-5)
    np.testing.assert_allclose(embedder.embed_images(photos), ref_images, atol=1e-5)


def test_long_text_is_truncated_like_reference(embedder, reference):
    texts = ['a cat ' * 200, 'short']
    ref_texts, _ = reference(texts, synthetic_images()[:1], truncation=True, max_length=77)
    np.testing.assert_allclose(embedder.embed_texts(texts), ref_texts, atol=1e-5)


@pytest.mark.parametrize('kind', ['text', 'image'])
def test_output_is_float32_unit_norm_n_by_projection_dim(embedder, kind):
    out = embedder.embed_texts(TEXTS) if kind == 'text' else embedder.embed_images(
        synthetic_images())
    assert out.dtype == np.float32
    assert out.shape == (4, PROJECTION_DIM)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_texts([]).shape == (0, PROJECTION_DIM)


@pytest.mark.parametrize('batch_size', [1, 3, 64])
def test_batch_size_does_not_change_results(embedder, batch_size):
    images = synthetic_images()
    np.testing.assert_allclose(embedder.embed_images(images, batch_size=batch_size),
                               embedder.embed_images(images, batch_size=len(images)), atol=1e-5)
    np.testing.assert_allclose(embedder.embed_texts(TEXTS, batch_size=batch_size),
                               embedder.embed_texts(TEXTS, batch_size=len(TEXTS)), atol=1e-5)


@pytest.mark.parametrize('batch_size', [0, -1, 2.5, 'eight', True])
def test_invalid_batch_size_rejected(embedder, batch_size):
    with pytest.raises(InvalidRequestError, match='batch_size'):
        embedder.embed_texts(TEXTS, batch_size=batch_size)


def test_each_region_is_embedded_as_the_reference_embeds_what_is_inside_its_box(embedder,
                                                                                 reference):
    """A 3x3 tiling of solid colours: region i is exactly tile i, so its embedding must be the
    reference pipeline's embedding of a picture of tile i's colour alone."""
    rng = np.random.default_rng(5)
    colours = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(9)]
    picture = Image.new('RGB', (1200, 900))
    for i, colour in enumerate(colours):
        x, y = (i % 3) * 400, (i // 3) * 300
        picture.paste(colour, (x, y, x + 400, y + 300))
    data = io.BytesIO()
    picture.save(data, format='PNG')
    decoded = embedder.decode(data.getvalue())
    regions = embedder.embed_regions(decoded, grid_boxes(1200, 900), batch_size=4)
    _, expected = reference(TEXTS[:1], [Image.new('RGB', (400, 300), c) for c in colours])
    np.testing.assert_allclose(regions, expected, atol=1e-5)


@pytest.mark.parametrize('smallest_box', [None, 600, 300, 40])
def test_draft_decoding_shrinks_big_jpeg_but_keeps_boxes_at_input_size(embedder, smallest_box):
    width, height = 2400, 1600
    data = jpeg_bytes(synthetic_image(width, height))
    boxes = None if smallest_box is None else [[0, 0, width, height],
                                                [100, 100, 100 + smallest_box, 900]]
    decoded = embedder.decode(data, boxes)
    assert (decoded.width, decoded.height) == (width, height)
    need = draft_min_side(INPUT_SIZE, width, height, boxes)
    assert min(decoded.image.size) >= min(need, height)
    if smallest_box == 40:  # smaller than the input size: every original pixel is needed
        assert decoded.image.size == (width, height)
    else:
        assert decoded.image.width < width
        box_side = height if smallest_box is None else smallest_box
        assert box_side / decoded.scale_x >= INPUT_SIZE


@pytest.mark.parametrize('boxes, expected', [
    (None, 64), ([[0, 0, 1000, 500]], 64), ([[0, 0, 100, 250]], 320), ([[5, 5, 5, 5]], 32000)])
def test_draft_min_side(boxes, expected):
    assert draft_min_side(64, 1000, 500, boxes) == expected


def test_unknown_checkpoint_raises_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match='no-such-model'):
        Embedder(str(tmp_path / 'no-such-model'), device='cpu')


def test_non_clip_checkpoint_raises_model_load_error(tiny_dino):
    with pytest.raises(ModelLoadError, match='not a dual-encoder image-text checkpoint'):
        Embedder(tiny_dino, device='cpu')


def test_checkpoint_precedence(tiny_clip, monkeypatch, tmp_path):
    """flag (an explicit checkpoint) > environment > flow YAML > default."""
    missing = str(tmp_path / 'missing')
    monkeypatch.setenv(ENV_CLIP_MODEL, tiny_clip)
    assert Embedder(None, device='cpu').checkpoint == tiny_clip
    encoder = ClipEncoder(model=missing, device='cpu')  # the YAML's model loses to the env
    assert encoder.embedder.checkpoint == tiny_clip
    monkeypatch.setenv(ENV_CLIP_MODEL, missing)
    assert Embedder(tiny_clip, device='cpu').checkpoint == tiny_clip  # a flag wins
    monkeypatch.delenv(ENV_CLIP_MODEL)
    assert ClipEncoder(model=tiny_clip, device='cpu').embedder.checkpoint == tiny_clip
    assert resolve_checkpoint(None, ENV_CLIP_MODEL, DEFAULT_CLIP_MODEL) == DEFAULT_CLIP_MODEL


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available here')
def test_cuda_requested_without_cuda_is_a_clear_error(tiny_clip):
    with pytest.raises(ValueError, match='CUDA is not available'):
        Embedder(tiny_clip, device='cuda')


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_fp16_stays_close_to_fp32(tiny_clip):
    images = synthetic_images()
    full = Embedder(tiny_clip, device='cuda')
    half = Embedder(tiny_clip, device='cuda', precision='fp16')
    assert half.model.dtype == torch.float16
    for a, b in [(full.embed_images(images), half.embed_images(images)),
                 (full.embed_texts(TEXTS), half.embed_texts(TEXTS))]:
        assert b.dtype == np.float32
        assert np.min(np.sum(a * b, axis=1)) > 0.99


def image_doc(data: bytes, width: int, height: int, doc_id: str) -> ImageDoc:
    boxes = [[0, 0, width, height]] + grid_boxes(width, height, 2).tolist()
    kinds = [KIND_WHOLE] + [KIND_GRID] * 4
    return ImageDoc(id=doc_id, blob=data, width=width, height=height, chunks=DocList[Chunk](
        [Chunk(parent_id=doc_id, box=b, kind=k) for b, k in zip(boxes, kinds)]))


@pytest.mark.parametrize('docs', [None, DocList[ImageDoc]()])
@pytest.mark.parametrize('endpoint', ['index', 'search'])
def test_executor_none_or_empty_docs_returned_as_is(encoder, docs, endpoint):
    assert getattr(encoder, endpoint)(docs=docs, parameters={}) is docs


def test_executor_index_embeds_chunks_and_isolates_bad_items(encoder, embedder, coco_images):
    photo = coco_images[0].read_bytes()
    width, height = decode(photo).width, decode(photo).height
    good = [image_doc(photo, width, height, 'photo'),
            image_doc(jpeg_bytes(synthetic_image()), 320, 240, 'synthetic')]
    bad = [image_doc(b'not an image at all', 10, 10, 'corrupt'),
           image_doc(b'', 10, 10, 'zero-byte'),
           image_doc(photo[: len(photo) // 3], width, height, 'truncated')]
    docs = DocList[ImageDoc]([bad[0], good[0], bad[1], good[1], bad[2]])
    assert encoder.index(docs=docs, parameters={}) is docs
    for doc in bad:
        assert doc.status == STATUS_ERROR and doc.error
        assert all(chunk.embedding is None for chunk in doc.chunks)
    for doc in good:
        assert doc.error is None
        decoded = embedder.decode(doc.blob, [c.box for c in doc.chunks])
        expected = embedder.embed_regions(decoded, [c.box for c in doc.chunks])
        np.testing.assert_allclose(np.stack([c.embedding for c in doc.chunks]), expected,
                                   atol=1e-5)


def test_executor_refuses_a_batch_size_from_a_request(encoder):
    # Batch sizes are the service's setting (memory), not a client's.
    docs = DocList[ImageDoc]([image_doc(jpeg_bytes(synthetic_image()), 320, 240, 'a')])
    with pytest.raises(InvalidRequestError, match='unknown parameter batch_size for /index'):
        encoder.index(docs=docs, parameters={'batch_size': 3})


def test_executor_search_text_image_and_bad_queries(encoder, embedder):
    image = synthetic_image(seed=3)
    docs = DocList[ImageDoc]([
        ImageDoc(text='  a red square '), ImageDoc(text='   '), ImageDoc(),
        ImageDoc(blob=jpeg_bytes(image)), ImageDoc(text='', blob=jpeg_bytes(image)),
        ImageDoc(blob=b'\xff\xd8garbage'), ImageDoc(blob=b'')])
    out = encoder.search(docs=docs, parameters={})
    np.testing.assert_allclose(out[0].embedding, embedder.embed_texts(['a red square'])[0],
                               atol=1e-5)
    for doc in (out[1], out[2], out[6]):
        assert doc.embedding is None and doc.error.startswith('empty query')
    expected = embedder.embed_images([decode(jpeg_bytes(image), min_side=INPUT_SIZE).image])[0]
    for doc in (out[3], out[4]):
        assert doc.error is None
        np.testing.assert_allclose(doc.embedding, expected, atol=1e-5)
    assert out[5].embedding is None and 'query image' in out[5].error


def test_flow_index_and_search(tiny_clip, tmp_path):
    docs = DocList[ImageDoc]([image_doc(jpeg_bytes(synthetic_image(seed=i)), 320, 240, f'd{i}')
                              for i in range(3)] + [image_doc(b'\x00' * 10, 5, 5, 'bad')])
    flow = Flow(protocol='grpc', host='127.0.0.1').add(
        uses=ClipEncoder, uses_with={'model': tiny_clip, 'batch_size': 4, 'device': 'cpu'},
        uses_metas={'workspace': str(tmp_path)})
    with flow:
        indexed = flow.post('/index', inputs=docs, return_type=DocList[ImageDoc])
        found = flow.post('/search', inputs=DocList[ImageDoc]([ImageDoc(text='red square')]),
                          return_type=DocList[ImageDoc])
    by_id = {doc.id: doc for doc in indexed}
    assert by_id['bad'].status == STATUS_ERROR
    for i in range(3):
        embeddings = np.stack([c.embedding for c in by_id[f'd{i}'].chunks])
        assert embeddings.shape == (5, PROJECTION_DIM)
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert found[0].embedding.shape == (PROJECTION_DIM,)
