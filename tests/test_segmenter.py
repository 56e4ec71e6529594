"""Segmenter: partition methods (loupe.segment) and the /index executor around them."""
import numpy as np
import pytest
import torch
from docarray import DocList
from PIL import Image
from transformers import DFineConfig, DFineForObjectDetection, RTDetrImageProcessor
from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

from loupe import tiny_models
from conftest import jpeg_bytes, synthetic_image
from executors.segmenter.executor import Segmenter
from loupe.boxes import iou_matrix
from loupe.constants import ENV_DETECTOR_MODEL, ENV_DINO_MODEL, STATUS_ERROR
from loupe.errors import InvalidRequestError, ModelLoadError
from loupe.images import DecodedImage, decode
from loupe.schema import ImageDoc
from loupe.segment import Partitioner, Settings, max_chunks
from loupe.segmentation.dino import connected_components, dino_grid, saliency_boxes
from loupe.segmentation.grid import grid_boxes
from loupe.segmentation.proposals import Candidates, finalize


def _decoded(width=320, height=240, seed=0) -> DecodedImage:
    return decode(jpeg_bytes(synthetic_image(width, height, seed)))


def _coverage(boxes, width, height) -> np.ndarray:
    covered = np.zeros((height, width), dtype=bool)
    for x1, y1, x2, y2 in boxes:
        covered[int(np.floor(y1)):int(np.ceil(y2)), int(np.floor(x1)):int(np.ceil(x2))] = True
    return covered


def _assert_valid(proposals, width, height, kind):
    assert proposals[0].kind == 'whole'
    assert proposals[0].box == [0, 0, width, height]
    for p in proposals[1:]:
        x1, y1, x2, y2 = p.box
        assert p.kind == kind
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert iou_matrix([p.box], [proposals[0].box])[0, 0] <= 0.9


@pytest.fixture(scope='module')
def tiny_dfine(tmp_path_factory) -> str:
    """A tiny D-FINE (architecture of the default detector) with its RT-DETR processor."""
    torch.manual_seed(0)
    backbone = dict(
        model_type='hgnet_v2', embedding_size=8, depths=[1, 1, 1, 1],
        hidden_sizes=[16, 32, 64, 128],
        stem_channels=[3, 8, 8], stage_in_channels=[8, 16, 32, 64],
        stage_mid_channels=[8, 16, 32, 64], stage_out_channels=[16, 32, 64, 128],
        stage_num_blocks=[1, 1, 1, 1], stage_numb_of_layers=[1, 1, 1, 1],
        stage_downsample=[False, True, True, True], stage_light_block=[False, False, True, True],
        stage_kernel_size=[3, 3, 5, 5], out_features=['stage3', 'stage4'])
    config = DFineConfig(
        backbone_config=backbone, encoder_hidden_dim=16, encoder_in_channels=[64, 128],
        feat_strides=[16, 32], encoder_ffn_dim=32, encoder_attention_heads=2,
        encode_proj_layers=[1],
        d_model=16, num_queries=20, decoder_in_channels=[16, 16], decoder_ffn_dim=32,
        num_feature_levels=2, decoder_n_points=[2, 2], decoder_layers=2, decoder_attention_heads=2,
        num_denoising=0, hidden_expansion=0.34, depth_mult=0.34, lqe_hidden_dim=8, head_dim=8,
        id2label=dict(enumerate(tiny_models.COCO_NAMES)))
    path = tmp_path_factory.mktemp('dfine')
    DFineForObjectDetection(config).eval().save_pretrained(path)
    RTDetrImageProcessor(size={'height': 64, 'width': 64}).save_pretrained(path)
    return str(path)


@pytest.fixture(scope='module')
def tiny_dinov2_registers(tmp_path_factory) -> str:
    torch.manual_seed(0)
    config = Dinov2WithRegistersConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=4, image_size=56, patch_size=14,
                                       num_register_tokens=4)
    path = tmp_path_factory.mktemp('dinov2_registers')
    Dinov2WithRegistersModel(config).eval().save_pretrained(path)
    tiny_models.BitImageProcessor(size={'shortest_edge': 56}).save_pretrained(path)
    return str(path)


@pytest.fixture(scope='module')
def partitioner() -> Partitioner:
    return Partitioner(device='cpu', grid_overlap=0.0)  # exact tilings: cells of known size


# --- grid -------------------------------------------------------------------------------------

@pytest.mark.parametrize('rows,cols,overlap,levels', [
    (3, 3, 0.0, 1), (2, 4, 0.0, 1), (3, 3, 0.25, 1), (2, 2, 0.5, 2), (1, 3, 0.9, 1),
    (3, 2, 0.0, 3)])
@pytest.mark.parametrize('size', [(320, 240), (97, 301)])
def test_grid_tiles_cover_image_with_equal_cells(partitioner, rows, cols, overlap, levels, size):
    width, height = size
    s = partitioner.resolve(method='grid', grid_rows=rows, grid_cols=cols, grid_overlap=overlap,
                            grid_levels=levels, min_box_area=0.0, max_boxes=1000)
    (proposals,) = partitioner.partition([_decoded(width, height)], s)
    _assert_valid(proposals, width, height, 'grid')
    expected = sum(rows * cols * k * k for k in range(1, levels + 1))
    assert len(proposals) == 1 + expected == max_chunks(s)
    start = 1
    for k in range(1, levels + 1):  # each level on its own tiles the image
        level = np.asarray([p.box for p in proposals[start:start + rows * cols * k * k]])
        start += rows * cols * k * k
        assert _coverage(level, width, height).all()
        sizes = np.stack([level[:, 2] - level[:, 0], level[:, 3] - level[:, 1]], axis=1)
        np.testing.assert_allclose(sizes, sizes[:1].repeat(len(sizes), 0), atol=0.02)


@pytest.mark.parametrize('overlap', [0.0, 0.2, 0.5])
def test_grid_overlap_is_share_of_cell_shared_with_neighbour(overlap):
    cells = grid_boxes(300, 200, rows=2, cols=3, overlap=overlap)
    left, right = cells[0], cells[1]
    shared = left[2] - right[0]
    assert shared == pytest.approx(overlap * (left[2] - left[0]), abs=1e-3)


def test_one_cell_grid_is_only_the_whole_image(partitioner):
    s = partitioner.resolve(grid_rows=1, grid_cols=1)
    assert [len(p) for p in partitioner.partition([_decoded()], s)] == [1]


@pytest.mark.parametrize('min_box_area,expected', [(0.0, 45), (0.02, 45), (0.03, 9), (0.2, 0)])
def test_grid_min_box_area_is_share_of_image(partitioner, min_box_area, expected):
    # Two levels: 9 cells of 1/9 of the image, 36 of 1/36 (~0.028); same at any resolution.
    s = partitioner.resolve(grid_levels=2, min_box_area=min_box_area, max_boxes=100)
    for image in (_decoded(320, 240), _decoded(1280, 960)):
        assert [len(p) for p in partitioner.partition([image], s)] == [1 + expected]


@pytest.mark.parametrize('max_boxes', [0, 4, 9])
def test_grid_cap_keeps_coarse_cells_first(partitioner, max_boxes):
    s = partitioner.resolve(grid_levels=2, max_boxes=max_boxes)
    (proposals,) = partitioner.partition([_decoded()], s)
    assert len(proposals) == 1 + max_boxes
    assert all(q.box[2] - q.box[0] == pytest.approx(320 / 3, abs=0.01) for q in proposals[1:])


# --- shared post-processing -------------------------------------------------------------------

BOXES = [[10, 10, 60, 60], [12, 12, 62, 62], [100, 100, 150, 150], [-20, -20, 30, 30],
         [0, 0, 199, 100], [5, 5, 7, 7]]
SCORES = [0.5, 0.9, 0.7, 0.6, 0.95, 0.8]


@pytest.mark.parametrize('nms_iou', [0.3, 0.5, 0.95])
@pytest.mark.parametrize('max_boxes', [0, 1, 2, 10])
@pytest.mark.parametrize('min_box_area', [0.0, 0.01])
def test_finalize_clips_filters_suppresses_and_caps(nms_iou, max_boxes, min_box_area):
    s = Settings(nms_iou=nms_iou, max_boxes=max_boxes, min_box_area=min_box_area)
    c = Candidates(boxes=np.asarray(BOXES, np.float32), kind='detector',
                   scores=np.asarray(SCORES), labels=list('abcdef'))
    proposals = finalize(c, width=200, height=100, s=s)
    _assert_valid(proposals, 200, 100, 'detector')
    kept = proposals[1:]
    assert len(kept) <= max_boxes
    labels = [p.label for p in kept]
    assert 'e' not in labels  # near-duplicate of the whole image
    assert [p.score for p in kept] == sorted((p.score for p in kept), reverse=True)
    # the tiny box holds 4 px of 20,000: under 1 % of the image
    assert ('f' in labels) == (min_box_area == 0 and max_boxes >= 2)
    boxes = np.asarray([p.box for p in kept]).reshape(-1, 4)
    overlaps = iou_matrix(boxes, boxes) - np.eye(len(boxes))
    assert (overlaps <= nms_iou + 1e-6).all()
    if max_boxes == 10:  # no cap: 'a' overlaps the better 'b' with IoU ~0.85
        assert ('a' in labels) == (nms_iou > 0.85)
    if 'd' in labels:
        assert kept[labels.index('d')].box == [0, 0, 30, 30]


def test_finalize_never_suppresses_a_tiling():
    cells = grid_boxes(100, 100, rows=2, cols=2, overlap=0.9)
    proposals = finalize(Candidates(boxes=cells, kind='grid'), 100, 100, Settings(nms_iou=0.0))
    assert len(proposals) == 5


# --- detector ---------------------------------------------------------------------------------

@pytest.mark.parametrize('threshold', [0.0, 0.0123, 0.5])
def test_detector_boxes_respect_threshold(partitioner, tiny_detector, threshold):
    s = partitioner.resolve(method='detector', detector_model=tiny_detector,
                            detector_threshold=threshold, min_box_area=0.0, nms_iou=1.0,
                            max_boxes=100)
    images = [_decoded(320, 240), _decoded(200, 300, seed=1)]
    for image, proposals in zip(images, partitioner.partition(images, s)):
        _assert_valid(proposals, image.width, image.height, 'detector')
        for p in proposals[1:]:
            assert p.score >= threshold
            assert p.label in tiny_models.COCO_NAMES


def test_detector_threshold_keeps_fewer_boxes_as_it_rises(partitioner, tiny_detector):
    image = _decoded()
    counts = [len(partitioner.partition([image], partitioner.resolve(
        method='detector', detector_model=tiny_detector, detector_threshold=t,
        min_box_area=0.0, nms_iou=1.0, max_boxes=100))[0]) for t in (0.0, 0.0123, 0.5)]
    assert counts[0] > 1
    assert counts == sorted(counts, reverse=True)


def test_detector_batch_equals_one_by_one(tiny_detector):
    p = Partitioner(method='detector', detector_model=tiny_detector, detector_threshold=0.0,
                    batch_size=2, device='cpu')
    images = [_decoded(seed=0), _decoded(seed=1), _decoded(200, 300, seed=2), _decoded(seed=3)]
    batched = p.partition(images)
    for image, proposals in zip(images, batched):
        single = p.partition([image])[0]
        assert [q.label for q in single] == [q.label for q in proposals]
        np.testing.assert_allclose([q.box for q in single], [q.box for q in proposals], atol=0.05)


@pytest.mark.parametrize('method', ['detector', 'dino'])
def test_model_boxes_map_from_decoded_to_original_pixels(tiny_detector, tiny_dino, method):
    """A draft-decoded image at half size gives the same boxes, scaled by two."""
    p = Partitioner(method=method, detector_model=tiny_detector, detector_threshold=0.0,
                    dino_model=tiny_dino, dino_size=64, min_box_area=0.0, device='cpu')
    img = synthetic_image(160, 120)
    small = p.partition([DecodedImage(image=img, width=160, height=120)])[0]
    large = p.partition([DecodedImage(image=img, width=320, height=240)])[0]
    assert len(small) == len(large) > 1
    np.testing.assert_allclose(np.asarray([q.box for q in small]) * 2,
                               [q.box for q in large], atol=0.05)


def test_default_architecture_dfine_builds_and_detects(partitioner, tiny_dfine):
    s = partitioner.resolve(method='detector', detector_model=tiny_dfine, detector_threshold=0.0)
    images = [_decoded(320, 240), _decoded(120, 200, seed=1)]
    for image, proposals in zip(images, partitioner.partition(images, s)):
        _assert_valid(proposals, image.width, image.height, 'detector')
        assert len(proposals) > 1
        assert {p.label for p in proposals[1:]} <= set(tiny_models.COCO_NAMES)


def test_explicit_checkpoint_wins_over_env_and_missing_checkpoint_is_reported(
        tiny_detector, monkeypatch, tmp_path):
    image = _decoded()
    missing = str(tmp_path / 'no-such-model')
    monkeypatch.setenv(ENV_DETECTOR_MODEL, tiny_detector)
    p = Partitioner(method='detector', detector_model=missing, device='cpu')
    with pytest.raises(ModelLoadError, match='no-such-model'):
        p.partition([image])
    assert Partitioner(method='detector', device='cpu').partition([image])[0][0].kind == 'whole'
    # The executor: the environment wins over the flow YAML.
    segmenter = Segmenter(method='detector', detector_model=missing, device='cpu',
                          metas={'workspace': str(tmp_path)})
    assert segmenter.partitioner.settings.detector_model == tiny_detector


# --- dino -------------------------------------------------------------------------------------

def test_saliency_boxes_surround_the_attention_mass():
    attention = np.full((6, 8), 0.01)
    attention[1:3, 2:5] = 1.0  # a hot block of 6 patches
    attention[4, 7] = 0.9  # and a hot single patch elsewhere
    boxes, scores = saliency_boxes(attention, mass=0.75)  # the block holds 6 / 7.31
    assert boxes.tolist() == [[2, 1, 5, 3]]
    assert scores[0] == pytest.approx(6 / attention.sum())
    boxes, scores = saliency_boxes(attention, mass=0.6)  # 5 block patches suffice
    assert boxes.tolist() == [[2, 1, 5, 3]]
    assert scores[0] == pytest.approx(5 / attention.sum())
    boxes, scores = saliency_boxes(attention, mass=0.9)
    assert sorted(boxes.tolist()) == [[2, 1, 5, 3], [7, 4, 8, 5]]
    assert saliency_boxes(np.zeros((3, 3)), 0.6)[0].shape == (0, 4)


def test_connected_components_use_four_neighbours():
    mask = np.asarray([[1, 0, 0], [0, 1, 1], [0, 0, 1]], dtype=bool)
    sizes = sorted(len(c) for c in connected_components(mask))
    assert sizes == [1, 3]


@pytest.mark.parametrize('width,height,size,patch,expected', [
    (640, 480, 448, 16, (21, 28)), (480, 640, 448, 16, (28, 21)), (100, 100, 64, 8, (8, 8)),
    (5000, 10, 224, 14, (1, 16))])
def test_dino_grid_keeps_aspect_ratio(width, height, size, patch, expected):
    assert dino_grid(width, height, size, patch) == expected


@pytest.mark.parametrize('model', ['tiny_dino', 'tiny_dinov2', 'tiny_dinov2_registers'])
@pytest.mark.parametrize('mode', ['heads', 'sum'])
@pytest.mark.parametrize('mass', [0.3, 0.6, 0.9])
def test_dino_proposals(request, partitioner, model, mode, mass):
    s = partitioner.resolve(method='dino', dino_model=request.getfixturevalue(model),
                            dino_mode=mode, dino_mass=mass, dino_size=64, min_box_area=0.0,
                            nms_iou=1.0, max_boxes=1000)
    images = [_decoded(320, 240), _decoded(150, 260, seed=1), _decoded(320, 240, seed=2)]
    results = partitioner.partition(images, s)
    for image, proposals in zip(images, results):
        _assert_valid(proposals, image.width, image.height, 'dino')
        assert all(0 < p.score <= 1 for p in proposals[1:])
        if mode == 'sum':  # one map: its regions share one attention mass
            assert sum(p.score for p in proposals[1:]) <= 1 + 1e-5
    if mass < 0.5:  # a third of near-uniform attention cannot span the whole image
        assert sum(len(p) for p in results) > len(images)


def test_dino_heads_propose_regions_of_each_head(partitioner, tiny_dino):
    settings = dict(method='dino', dino_model=tiny_dino, dino_size=64, min_box_area=0.0,
                    nms_iou=1.0, max_boxes=1000)
    image = [_decoded()]
    heads = partitioner.partition(image, partitioner.resolve(dino_mode='heads', **settings))[0]
    summed = partitioner.partition(image, partitioner.resolve(dino_mode='sum', **settings))[0]
    assert sum(p.score for p in heads[1:]) > 1  # four heads, a mass share from each
    assert len(heads) > len(summed)


def test_dino_env_checkpoint(tiny_dinov2, monkeypatch):
    monkeypatch.setenv(ENV_DINO_MODEL, tiny_dinov2)
    p = Partitioner(method='dino', dino_size=56, device='cpu', min_box_area=0.0)
    (proposals,) = p.partition([_decoded()])
    assert {q.kind for q in proposals[1:]} == {'dino'}  # the model ran: it found regions
    assert [key[1] for key in p.models._models] == [tiny_dinov2]  # and it is the env's


# --- orientation, settings --------------------------------------------------------------------

@pytest.fixture
def rotated_jpeg() -> bytes:
    """Stored 320x240 with EXIF orientation 6: shown (and boxed) as 240x320."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg_bytes(synthetic_image(320, 240), exif=exif)


@pytest.mark.parametrize('method', ['grid', 'detector', 'dino'])
def test_exif_rotated_jpeg_gives_boxes_in_oriented_pixels(tiny_detector, tiny_dino,
                                                          rotated_jpeg, method):
    p = Partitioner(method=method, detector_model=tiny_detector, detector_threshold=0.0,
                    dino_model=tiny_dino, dino_size=64, min_box_area=0.0, device='cpu',
                    grid_overlap=0.0)
    image = decode(rotated_jpeg)
    assert (image.width, image.height) == (240, 320)
    (proposals,) = p.partition([image])
    assert len(proposals) > 1
    _assert_valid(proposals, 240, 320, method)
    if method == 'grid':
        assert _coverage([q.box for q in proposals[1:]], 240, 320).all()
        assert proposals[1].box == [0, 0, 80, pytest.approx(106.67)]


def test_unknown_method_lists_valid_ones(partitioner):
    for make in (lambda: Partitioner(method='sam'), lambda: partitioner.resolve(method='sam')):
        with pytest.raises(ValueError, match="one of none, grid, detector, dino, got 'sam'"):
            make()


@pytest.mark.parametrize('name,value', [
    ('grid_rows', 0), ('grid_rows', 2.5), ('grid_cols', 'three'), ('grid_overlap', 1.0),
    ('grid_overlap', -0.1), ('grid_levels', 0), ('detector_threshold', 1.5), ('dino_mode', 'max'),
    ('dino_mass', 0.0), ('dino_size', 0), ('min_box_area', 1.0), ('nms_iou', -1),
    ('max_boxes', -1), ('device', 'tpu'), ('batch_size', 0), ('method', None),
    ('grid_rows', True), ('colour', 'red')])
def test_invalid_settings_are_rejected(partitioner, name, value):
    with pytest.raises(InvalidRequestError, match=name):
        partitioner.resolve(**{name: value})


def test_request_numbers_arrive_as_floats(partitioner):
    s = partitioner.resolve(grid_rows=2.0, grid_cols=4.0, max_boxes=10.0)
    assert (s.grid_rows, s.grid_cols, s.max_boxes) == (2, 4, 10)
    assert [len(p) for p in partitioner.partition([_decoded()], s)] == [9]
    assert partitioner.partition([], s) == []


# --- real photos ------------------------------------------------------------------------------

def test_grid_covers_real_photos(partitioner, coco_images):
    for path in coco_images[:3]:
        image = decode(path.read_bytes(), min_side=64)
        for overlap in (0.0, 0.3):
            (proposals,) = partitioner.partition(
                [image], partitioner.resolve(grid_overlap=overlap))
            assert len(proposals) == 10
            _assert_valid(proposals, image.width, image.height, 'grid')
            assert _coverage([q.box for q in proposals[1:]], image.width, image.height).all()


@pytest.mark.parametrize('method', ['detector', 'dino'])
def test_models_on_real_photos(tiny_detector, tiny_dinov2, coco_images, method):
    p = Partitioner(method=method, detector_model=tiny_detector, detector_threshold=0.0,
                    dino_model=tiny_dinov2, dino_size=112, device='cpu')
    images = [decode(path.read_bytes(), min_side=112) for path in coco_images[:2]]
    for image, proposals in zip(images, p.partition(images)):
        assert image.image.width < image.width  # draft-decoded, boxes still in original pixels
        _assert_valid(proposals, image.width, image.height, method)


# --- executor ---------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def segmenter(tmp_path_factory) -> Segmenter:
    return Segmenter(metas={'workspace': str(tmp_path_factory.mktemp('segmenter'))})


def test_executor_leaves_none_and_empty_docs(segmenter):
    assert segmenter.index(None, {}) is None
    empty = DocList[ImageDoc]()
    assert len(segmenter.index(empty, {})) == 0


def test_executor_reports_bad_items_and_indexes_the_rest(segmenter, tmp_path):
    path = tmp_path / 'photo.jpg'
    path.write_bytes(jpeg_bytes(synthetic_image(200, 100)))
    docs = DocList[ImageDoc]([
        ImageDoc(blob=jpeg_bytes(synthetic_image())),
        ImageDoc(blob=b'not an image at all'),
        ImageDoc(uri=str(tmp_path / 'missing.jpg')),
        ImageDoc(uri=str(path), blob=path.read_bytes()),
        ImageDoc(blob=b''),  # zero bytes and nothing else
        ImageDoc(uri=str(path)),  # a readable file, but the service does not read uris
        ImageDoc(blob=jpeg_bytes(synthetic_image())[:200]),  # truncated
    ])
    out = segmenter.index(docs, {'grid_rows': 2, 'grid_cols': 2})
    good, bad = [out[0], out[3]], [out[1], out[2], out[4], out[5], out[6]]
    for doc in bad:
        assert doc.error and doc.status == STATUS_ERROR and len(doc.chunks) == 0
    assert 'missing.jpg' in out[2].error
    assert 'does not read' in out[5].error
    for doc, size in zip(good, [(320, 240), (200, 100)]):
        assert doc.error is None
        assert (doc.width, doc.height) == size
        assert len(doc.chunks) == 5
        assert doc.chunks[0].kind == 'whole' and doc.chunks[0].box == [0, 0, *size]
        assert {c.parent_id for c in doc.chunks} == {doc.id}


def test_executor_rejects_invalid_request_parameters(segmenter):
    docs = DocList[ImageDoc]([ImageDoc(blob=jpeg_bytes(synthetic_image()))])
    with pytest.raises(InvalidRequestError, match='none, grid, detector, dino'):
        segmenter.index(docs, {'method': 'sam'})
    # Models and devices are the service's choice, never a request's.
    for name, value in (('detector_model', '/etc'), ('device', 'cuda'), ('batch_size', 64)):
        with pytest.raises(InvalidRequestError, match=f'unknown parameter {name} for /index'):
            segmenter.index(docs, {name: value})
    with pytest.raises(InvalidRequestError, match=r'max_boxes must be an integer in \[0, 256\]'):
        segmenter.index(docs, {'max_boxes': 10_000})
    with pytest.raises(InvalidRequestError, match='grid_overlap'):
        segmenter.index(docs, {'grid_overlap': 1.5})


def test_flow_indexes_through_segmenter(tmp_path, tiny_detector):
    from jina import Flow

    path = tmp_path / 'photo.jpg'
    path.write_bytes(jpeg_bytes(synthetic_image(200, 300)))
    docs = DocList[ImageDoc]([ImageDoc(blob=jpeg_bytes(synthetic_image())),
                              ImageDoc(uri=str(path), blob=path.read_bytes()),
                              ImageDoc(blob=b'garbage')])
    flow = Flow(protocol='grpc', host='127.0.0.1').add(
        uses=Segmenter, uses_with={'method': 'detector', 'detector_model': tiny_detector,
                                   'device': 'cpu'},
        uses_metas={'workspace': str(tmp_path)})
    with flow:
        detected = flow.post('/index', inputs=docs, return_type=DocList[ImageDoc],
                             parameters={'detector_threshold': 0.0})
        gridded = flow.post('/index', inputs=docs, return_type=DocList[ImageDoc],
                            parameters={'method': 'grid', 'grid_rows': 2, 'grid_cols': 3})
        passed = flow.post('/search', inputs=DocList[ImageDoc]([ImageDoc(text='a dog')]),
                           return_type=DocList[ImageDoc])
    assert [d.width for d in detected] == [320, 200, None]
    assert {c.kind for c in detected[0].chunks[1:]} == {'detector'}
    assert detected[1].blob == path.read_bytes()
    assert detected[2].status == STATUS_ERROR and not detected[2].chunks
    assert [len(d.chunks) for d in gridded] == [7, 7, 0]
    assert all(c.parent_id == gridded[1].id for c in gridded[1].chunks)
    assert passed[0].text == 'a dog' and not passed[0].chunks
