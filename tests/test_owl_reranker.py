"""OWL-ViT / OWLv2 reranking: detections in original pixels, batching, and the executor."""
import shutil

import numpy as np
import pytest
import torch
from docarray import DocList
from jina import Flow
from PIL import Image
from transformers import Owlv2ForObjectDetection, OwlViTForObjectDetection

from conftest import jpeg_bytes, synthetic_image
from executors.owl_reranker.executor import OwlReranker
from loupe.constants import (
    ENV_OWL_MODEL,
    SCORE_CHUNK,
    SCORE_FINAL,
    SCORE_RERANK,
    SOURCE_CHUNK,
    SOURCE_RERANKER,
)
from loupe.errors import ConfigError, InvalidRequestError, ModelLoadError
from loupe.images import DecodedImage, decode
from loupe.boxes import generalized_iou
from loupe.rerank import Detection, Reranker, check_weight, combine_scores, rerank_matches
from loupe.schema import ImageDoc, Match
from loupe.store import ParentStore, build_record

ARCHS = {'tiny_owlvit': OwlViTForObjectDetection, 'tiny_owlv2': Owlv2ForObjectDetection}
QUERY = 'red square'
BEST_PATCH = 5


def _tempered(src: str, dst, cls) -> str:
    """A copy of a tiny checkpoint with its output heads scaled down. The random heads saturate
    (every box degenerate, every score 1.0), which would hide wrong boxes and wrong batching."""
    shutil.copytree(src, dst, dirs_exist_ok=True)
    model = cls.from_pretrained(src)
    with torch.no_grad():
        for layer in (model.box_head.dense2, model.class_head.logit_shift,
                      model.class_head.logit_scale):
            layer.weight.mul_(0.001)
            layer.bias.zero_()
    model.save_pretrained(dst)
    return str(dst)


@pytest.fixture(scope='session', params=sorted(ARCHS))
def owl_path(request, tmp_path_factory) -> str:
    src = request.getfixturevalue(request.param)
    return _tempered(src, tmp_path_factory.mktemp(request.param), ARCHS[request.param])


@pytest.fixture(scope='session')
def owlvit_path(tiny_owlvit, tmp_path_factory) -> str:
    return _tempered(tiny_owlvit, tmp_path_factory.mktemp('owlvit'), OwlViTForObjectDetection)


@pytest.fixture(scope='session')
def reranker(owl_path) -> Reranker:
    return Reranker(owl_path, device='cpu', batch_size=3)


def exif_rotated_jpeg(width: int = 200, height: int = 120) -> bytes:
    """Stored landscape, shown portrait: EXIF orientation 6 (rotate 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg_bytes(synthetic_image(width, height, seed=2), exif=exif)


def sample_images() -> list:
    return [
        decode(jpeg_bytes(synthetic_image(320, 240))),  # landscape
        synthetic_image(90, 200, seed=1),  # portrait, as PIL
        DecodedImage(image=synthetic_image(160, 100, seed=3), width=1600, height=1000),  # preview
        decode(exif_rotated_jpeg()),  # 120 x 200 once oriented
        synthetic_image(64, 64, seed=4),  # square
    ]


def size_of(image) -> tuple:
    return (image.width, image.height)


def detect(reranker: Reranker, kind: str, images: list):
    if kind == 'text':
        return reranker.detect_text(images, QUERY)
    return reranker.detect_image(images, synthetic_image(40, 70, seed=5))


# -- plain code ---------------------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['text', 'image'])
def test_one_detection_per_image_inside_the_original_image(reranker, kind):
    images = sample_images()
    detections = detect(reranker, kind, images)
    assert len(detections) == len(images)
    for image, (score, box) in zip(images, detections):
        width, height = size_of(image)
        x1, y1, x2, y2 = box
        assert 0.0 <= score <= 1.0
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, (box, width, height)


def test_exif_rotated_image_gets_boxes_in_its_shown_orientation(reranker):
    image = decode(exif_rotated_jpeg(200, 120))
    assert size_of(image) == (120, 200)
    (_, (x1, y1, x2, y2)), = reranker.detect_text([image], QUERY)
    assert x2 <= 120 and y2 <= 200


@pytest.mark.parametrize('kind', ['text', 'image'])
def test_boxes_on_a_reduced_image_are_in_original_pixels(reranker, kind):
    small = synthetic_image(160, 100, seed=3)
    (score, box), = detect(reranker, kind, [small])
    (score_full, box_full), = detect(
        reranker, kind, [DecodedImage(image=small, width=1600, height=1000)])
    assert score_full == pytest.approx(score, abs=1e-6)
    assert box_full == pytest.approx([v * 10 for v in box], abs=1e-2)


@pytest.mark.parametrize('kind', ['text', 'image'])
def test_batches_give_the_results_of_single_images(reranker, monkeypatch, kind):
    images = sample_images()
    query = reranker.text_query(QUERY) if kind == 'text' else reranker.image_query(
        synthetic_image(40, 70, seed=5))
    batch_sizes = []
    embed = reranker.model.image_embedder
    monkeypatch.setattr(reranker.model, 'image_embedder', lambda **kw: (
        batch_sizes.append(len(kw['pixel_values'])), embed(**kw))[1])
    batched = reranker.detect(images, query)
    assert batch_sizes == [3, 2]  # one forward pass per batch_size images
    for image, (score, box) in zip(images, batched):
        (single_score, single_box), = reranker.detect([image], query)
        assert score == pytest.approx(single_score, abs=1e-4)
        assert box == pytest.approx(single_box, abs=0.05)


def _fake_heads(monkeypatch, reranker, box):
    """The model predicts ``box`` (normalised to its square input) at one patch, best scored."""
    x1, y1, x2, y2 = box
    target = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])

    def box_predictor(feats, feature_map, *args, **kwargs):
        boxes = torch.full((feats.shape[0], feats.shape[1], 4), 0.05)  # small, top-left
        boxes[:, BEST_PATCH] = target
        return boxes

    def class_predictor(feats, query_embeds=None, query_mask=None):
        logits = torch.zeros(feats.shape[0], feats.shape[1], 1)
        logits[:, BEST_PATCH] = 3.0
        return logits, None

    monkeypatch.setattr(reranker.model, 'box_predictor', box_predictor)
    monkeypatch.setattr(reranker.model, 'class_predictor', class_predictor)


# The model sees the image resized into the top-left of a grey square whose side is the image's
# longest side, so a normalised box times that side (decoded pixels) times decoded->original is
# where it is. The tiny models' input is 64 pixels, which these sizes divide exactly.
@pytest.mark.parametrize('decoded, original, normalised, expected', [
    ((128, 64), (256, 128), (0.25, 0.25, 0.75, 0.5), (64, 64, 192, 128)),  # landscape
    ((48, 96), (480, 960), (0.1, 0.5, 0.4, 0.75), (96, 480, 384, 720)),  # portrait
    ((128, 64), (256, 128), (0.5, 0.25, 1.2, 0.45), (128, 64, 256, 115.2)),  # past the edge
])
def test_predicted_box_maps_exactly_to_original_pixels(reranker, monkeypatch, decoded, original,
                                                       normalised, expected):
    assert reranker.input_size == 64
    _fake_heads(monkeypatch, reranker, normalised)
    image = DecodedImage(image=synthetic_image(*decoded), width=original[0], height=original[1])
    (score, box), = reranker.detect_text([image], QUERY)
    assert box == pytest.approx(list(expected), abs=1e-3)
    assert score == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())


def uniform(pixels: torch.Tensor) -> bool:
    """Whether every channel of a (channels, rows, columns) region holds one value."""
    return bool((pixels.amax(dim=(1, 2)) == pixels.amin(dim=(1, 2))).all())


def test_image_is_padded_bottom_right_not_squashed(reranker, monkeypatch):
    seen = []
    embed = reranker.model.image_embedder
    monkeypatch.setattr(reranker.model, 'image_embedder', lambda **kw: (
        seen.append(kw['pixel_values']), embed(**kw))[1])
    reranker.detect_text([synthetic_image(128, 64), synthetic_image(32, 64)], QUERY)
    landscape, portrait = seen[0]
    # Content fills the top half of the landscape input and the left half of the portrait one;
    # the rest is one uniform colour.
    assert uniform(landscape[:, 32:, :]) and not uniform(landscape[:, :32, :])
    assert uniform(portrait[:, :, 32:]) and not uniform(portrait[:, :, :32])


def test_box_centred_on_the_padding_does_not_win(reranker, monkeypatch):
    _fake_heads(monkeypatch, reranker, (0.3, 0.8, 0.5, 0.9))  # below a landscape image
    (score, box), = reranker.detect_text([synthetic_image(128, 64)], QUERY)
    # The small top-left box of another patch: (0.025, 0.075) of the 128-pixel square.
    assert box == pytest.approx([3.2, 3.2, 9.6, 9.6], abs=1e-3)
    assert score == pytest.approx(0.5)


def _pixel_values(reranker, image):
    return reranker.processor.image_processor(
        images=[image], do_resize=False, do_center_crop=False, do_pad=False,
        return_tensors='pt')['pixel_values']


@torch.inference_mode()
def test_scores_are_those_of_the_reference_model(reranker):
    image, query_image = synthetic_image(64, 64, seed=6), synthetic_image(64, 64, seed=7)
    pixel_values = _pixel_values(reranker, image)
    tokens = reranker.processor.tokenizer([QUERY], padding='max_length', truncation=True,
                                          max_length=reranker.max_text_length, return_tensors='pt')
    text_logits = reranker.model(pixel_values=pixel_values, **tokens).logits
    image_logits = reranker.model.image_guided_detection(
        pixel_values=pixel_values,
        query_pixel_values=_pixel_values(reranker, query_image)).logits
    (text_score, _), = reranker.detect_text([image], QUERY)
    (image_score, _), = reranker.detect_image([image], query_image)
    assert text_score == pytest.approx(text_logits.sigmoid().max().item(), abs=1e-5)
    assert image_score == pytest.approx(image_logits.sigmoid().max().item(), abs=1e-5)


def test_no_images_no_detections(reranker):
    assert reranker.detect_text([], QUERY) == []
    assert reranker.detect_image([], synthetic_image(32, 32)) == []


@pytest.mark.parametrize('query', ['', '   '])
def test_empty_text_query_is_rejected(reranker, query):
    with pytest.raises(InvalidRequestError):
        reranker.detect_text([synthetic_image(64, 64)], query)


def test_environment_overrides_the_flow_yaml_checkpoint(owlvit_path, monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_OWL_MODEL, owlvit_path)
    assert Reranker(None, device='cpu').checkpoint == owlvit_path
    executor = OwlReranker(model='no/such-checkpoint', device='cpu',
                           metas={'workspace': str(tmp_path)})
    assert executor.reranker.checkpoint == owlvit_path


def test_a_checkpoint_that_is_no_owl_model_is_refused(tiny_clip):
    with pytest.raises(ValueError, match='owlv2, owlvit'):
        Reranker(tiny_clip, device='cpu')


def test_a_missing_checkpoint_raises_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError):
        Reranker(str(tmp_path / 'nothing'), device='cpu')


@pytest.mark.parametrize('weight, expected', [(0.0, 0.3), (1.0, 0.8), (0.5, 0.55), (0.2, 0.4)])
def test_combined_score(weight, expected):
    assert combine_scores(0.3, 0.8, check_weight(weight)) == pytest.approx(expected)


@pytest.mark.parametrize('weight', [-0.1, 1.5, 'heavy', None])
def test_bad_weight_is_rejected(weight):
    with pytest.raises(InvalidRequestError):
        check_weight(weight)


def test_the_rerank_step_rescores_reboxes_and_resorts_the_head_only():
    """Known answers for the step the executor and loupe eval share (weight 0.5)."""
    def match(parent, score):
        return Match(parent_id=parent, score=score, scores={'chunk': score},
                     highlight_box=[0.0, 0.0, 9.0, 9.0], highlight_source='chunk')

    detections = {'a': Detection(0.05, [5.0, 5.0, 6.0, 6.0]),  # too weak to move the box
                  'b': Detection(0.8, [1.0, 2.0, 3.0, 4.0]), 'c': None}  # c: no image
    out = rerank_matches([match('a', 0.30), match('b', 0.25), match('c', 0.20),
                          match('d', 0.10)], 3, lambda head: [detections[m.parent_id]
                                                               for m in head], 0.5)
    assert [(m.parent_id, round(m.score, 6)) for m in out] == [
        ('b', 0.525), ('c', 0.2), ('a', 0.175), ('d', 0.1)]
    b, c, a, d = out
    assert (b.highlight_box, b.highlight_source) == ([1.0, 2.0, 3.0, 4.0], 'reranker')
    assert b.scores == {'chunk': 0.25, 'rerank': 0.8, 'final': 0.525}
    assert (a.highlight_box, a.highlight_source) == ([0.0, 0.0, 9.0, 9.0], 'chunk')
    assert 'rerank' not in c.scores and 'rerank' not in d.scores


def test_generalized_iou_known_values():
    # Apart, the enclosing box's empty share is subtracted: [0,0,1,1] and [2,0,3,1] leave 1 of 3.
    got = generalized_iou([[0, 0, 1, 1], [0, 0, 2, 2]], [[0, 0, 1, 1], [2, 0, 3, 1], [1, 1, 3, 3]])
    np.testing.assert_allclose(got, [[1.0, -1 / 3, -4 / 9], [0.25, -1 / 6, 1 / 7 - 2 / 9]],
                               atol=1e-6)


# -- executor -----------------------------------------------------------------------------------

# Original sizes (EXIF applied); 'big' is stored as a 1024-pixel preview.
STORED = {'wide': (320, 240), 'tall': (120, 300), 'rotated': (120, 200), 'big': (1600, 1000)}


@pytest.fixture(scope='module')
def image_store(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp('root') / 'images'
    sources = {'wide': jpeg_bytes(synthetic_image(320, 240)),
               'tall': jpeg_bytes(synthetic_image(120, 300, seed=1)),
               'rotated': exif_rotated_jpeg(200, 120),
               'big': jpeg_bytes(synthetic_image(1600, 1000, seed=3))}
    store = ParentStore(path)
    store.put(build_record(id_, data, preview_size=1024) for id_, data in sources.items())
    store.close()
    return str(path)


@pytest.fixture
def file_uri(tmp_path) -> str:
    path = tmp_path / 'elsewhere.jpg'
    path.write_bytes(jpeg_bytes(synthetic_image(150, 90, seed=8)))
    return str(path)


@pytest.fixture
def make_executor(tmp_path):
    made = []

    def make(path, **kwargs) -> OwlReranker:
        made.append(OwlReranker(model=path, device='cpu', batch_size=2,
                                metas={'workspace': str(tmp_path)}, **kwargs))
        return made[-1]

    yield make
    for executor in made:  # LMDB wants one open environment per path and process
        executor.close()


def query_doc(parent_ids, text=QUERY, uris=None, **kwargs) -> ImageDoc:
    uris = uris or {}
    matches = [Match(parent_id=pid, uri=uris.get(pid), score=score, scores={SCORE_CHUNK: score},
                     highlight_box=[0.0, 0.0, 10.0, 10.0], highlight_source=SOURCE_CHUNK,
                     chunk_kind='whole')
               for pid, score in zip(parent_ids, (0.9, 0.8, 0.7, 0.6, 0.5, 0.4))]
    return ImageDoc(text=text, matches=DocList[Match](matches), **kwargs)


def snapshot(doc: ImageDoc) -> list:
    return [m.dict() for m in doc.matches]


def assert_reranked(match: Match, weight: float, size: tuple) -> None:
    detection = match.scores[SCORE_RERANK]
    assert 0.0 <= detection <= 1.0
    assert match.score == pytest.approx(
        (1 - weight) * match.scores[SCORE_CHUNK] + weight * detection)
    assert match.scores[SCORE_FINAL] == match.score
    assert match.highlight_source == SOURCE_RERANKER
    x1, y1, x2, y2 = match.highlight_box
    assert 0 <= x1 < x2 <= size[0] and 0 <= y1 < y2 <= size[1]


@pytest.mark.parametrize('default, parameters', [
    (False, {}),  # off unless turned on
    (True, {'rerank': False}),  # a request turns it off
])
def test_rerank_off_leaves_matches_untouched(owlvit_path, image_store, make_executor, default,
                                             parameters):
    executor = make_executor(owlvit_path, rerank=default, image_store=image_store)
    docs = DocList[ImageDoc]([query_doc(list(STORED))])
    before = snapshot(docs[0])
    executor.search(docs, parameters=parameters)
    assert snapshot(docs[0]) == before


@pytest.mark.parametrize('parameters', [{'rerank': 'false'}, {'rerank': 1}, {'rerank_top_k': 1.5},
                                        {'rerank_top_k': 101}, {'model': 'x'}])
def test_a_request_of_the_wrong_type_or_over_a_cap_is_refused(owlvit_path, image_store,
                                                              make_executor, parameters):
    executor = make_executor(owlvit_path, rerank=True, image_store=image_store)
    with pytest.raises(InvalidRequestError, match=next(iter(parameters))):
        executor.search(DocList[ImageDoc]([query_doc(list(STORED))]), parameters=parameters)


@pytest.mark.parametrize('kind', ['text', 'image'])
@pytest.mark.parametrize('default, parameters, weight', [
    (False, {'rerank': True}, 0.5),  # a request turns it on
    (True, {'rerank_weight': 0.8}, 0.8),  # the flow turns it on; a request sets the weight
])
def test_rerank_on_resorts_by_the_combined_score(owl_path, image_store, make_executor, kind,
                                                 default, parameters, weight):
    executor = make_executor(owl_path, rerank=default, image_store=image_store)
    doc = query_doc(list(STORED)) if kind == 'text' else query_doc(
        list(STORED), text=None, blob=jpeg_bytes(synthetic_image(40, 70, seed=5)))
    executor.search(DocList[ImageDoc]([doc]), parameters=parameters)
    assert sorted(m.parent_id for m in doc.matches) == sorted(STORED)
    for match in doc.matches:
        assert_reranked(match, weight, STORED[match.parent_id])
    scores = [m.score for m in doc.matches]
    assert scores == sorted(scores, reverse=True)


def test_boxes_found_on_previews_are_in_original_pixels(owlvit_path, image_store,
                                                       make_executor):
    store = ParentStore(image_store, readonly=True)
    preview = decode(store.get('big').preview).image
    store.close()
    executor = make_executor(owlvit_path, image_store=image_store)
    doc = query_doc(['big'])
    executor.search(DocList[ImageDoc]([doc]), parameters={'rerank': True})
    assert max(preview.size) == 1024
    (score, box), = executor.reranker.detect_text([preview], QUERY)
    assert doc.matches[0].scores[SCORE_RERANK] == pytest.approx(score, abs=1e-5)
    assert doc.matches[0].highlight_box == pytest.approx([v * 1600 / 1024 for v in box], abs=0.02)


def test_only_the_top_k_are_reranked(owlvit_path, image_store, make_executor):
    executor = make_executor(owlvit_path, image_store=image_store)
    doc = query_doc(['wide', 'tall', 'rotated', 'big'])
    rest = snapshot(doc)[2:]
    executor.search(DocList[ImageDoc]([doc]), parameters={'rerank': True, 'rerank_top_k': 2})
    assert {m.parent_id for m in doc.matches[:2]} == {'wide', 'tall'}
    for match in doc.matches[:2]:
        assert_reranked(match, 0.5, STORED[match.parent_id])
    assert doc.matches[0].score >= doc.matches[1].score
    assert snapshot(doc)[2:] == rest


@pytest.mark.parametrize('store', ['real', 'none', 'missing'])
def test_images_missing_from_the_store_stay_as_they_were_and_uris_are_not_read(
        owlvit_path, image_store, tmp_path, make_executor, file_uri, store):
    path = {'real': image_store, 'none': None, 'missing': str(tmp_path / 'no-store')}[store]
    executor = make_executor(owlvit_path, image_store=path)
    doc = query_doc(['wide', 'gone', 'moved'], uris={'moved': file_uri})
    before = {m.parent_id: m.dict() for m in doc.matches}
    executor.search(DocList[ImageDoc]([doc]), parameters={'rerank': True})
    matches = {m.parent_id: m for m in doc.matches}
    assert matches['gone'].dict() == before['gone']
    assert matches['moved'].dict() == before['moved']  # a readable file, but a uri is a label
    if store == 'real':
        assert_reranked(matches['wide'], 0.5, STORED['wide'])
    else:
        assert matches['wide'].dict() == before['wide']


def test_docs_with_an_error_or_no_query_are_skipped(owlvit_path, image_store, make_executor):
    executor = make_executor(owlvit_path, image_store=image_store)
    failed = query_doc(['wide'], error='cannot decode')
    no_query = query_doc(['wide'], text=None)
    blank = query_doc(['wide'], text='  ')
    bad_image = query_doc(['wide'], text=None, blob=b'not an image')
    no_matches = ImageDoc(text=QUERY)
    good = query_doc(['wide'])
    docs = DocList[ImageDoc]([failed, no_query, blank, bad_image, no_matches, good])
    before = [snapshot(d) for d in docs]
    out = executor.search(docs, parameters={'rerank': True})
    assert [snapshot(d) for d in out][:5] == before[:5]
    assert out[5].matches[0].highlight_source == SOURCE_RERANKER


def test_none_or_empty_docs_are_returned_as_they_are(owlvit_path, make_executor):
    executor = make_executor(owlvit_path, rerank=True)
    assert executor.search(None, parameters={}) is None
    assert len(executor.search(DocList[ImageDoc](), parameters={})) == 0


@pytest.mark.parametrize('parameters', [
    {'rerank': 'maybe'}, {'rerank': True, 'rerank_top_k': 0},
    {'rerank': True, 'rerank_weight': 1.5}])
def test_bad_overrides_are_rejected(owlvit_path, image_store, make_executor, parameters):
    executor = make_executor(owlvit_path, image_store=image_store)
    with pytest.raises(InvalidRequestError):
        executor.search(DocList[ImageDoc]([query_doc(['wide'])]), parameters=parameters)


def test_bad_defaults_fail_at_start(owlvit_path, make_executor):
    with pytest.raises(ConfigError, match=r'rerank_weight must be a number in \[0, 1\], got 2'):
        make_executor(owlvit_path, rerank_weight=2)
    with pytest.raises(ConfigError, match='unknown reranker setting rerank_wieght; valid: model'):
        make_executor(owlvit_path, rerank_wieght=0.2)


def test_flow_reranks_search_results(owlvit_path, image_store, tmp_path):
    flow = Flow(protocol='grpc', host='127.0.0.1').add(
        uses=OwlReranker, uses_with={'model': owlvit_path, 'device': 'cpu',
                                     'image_store': image_store},
        uses_metas={'workspace': str(tmp_path)})
    with flow:
        off = flow.post('/search', inputs=[query_doc(list(STORED))],
                        return_type=DocList[ImageDoc])
        on = flow.post('/search', inputs=[query_doc(list(STORED))], parameters={'rerank': True},
                       return_type=DocList[ImageDoc])
    assert [m.highlight_source for m in off[0].matches] == [SOURCE_CHUNK] * len(STORED)
    for match in on[0].matches:
        assert_reranked(match, 0.5, STORED[match.parent_id])
    scores = [m.score for m in on[0].matches]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize('score, box, evidence', [
    (0.5, [10, 10, 50, 40], True),
    (0.1, [10, 10, 50, 40], True),
    (0.09, [10, 10, 50, 40], False),  # too weak: the chunk's box stays
    (0.9, [10, 10, 10, 40], False),  # zero area
])
def test_only_a_detection_that_is_evidence_replaces_the_box(score, box, evidence):
    from loupe.rerank import Detection, box_is_evidence

    assert box_is_evidence(Detection(score=score, box=box)) is evidence
