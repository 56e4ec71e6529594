"""``loupe eval``: data readers, method specs, the four evaluations and the CLI."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import jpeg_bytes
from loupe.cli import main
from loupe.errors import InvalidRequestError
from loupe.evaluation.captions import evaluate_captions
from loupe.evaluation.datasets import DatasetError, load_boxes, load_captions
from loupe.evaluation.examples import evaluate_query_by_example, select_queries
from loupe.evaluation.proposals import evaluate_proposals
from loupe.evaluation.reranking import RerankStage
from loupe.evaluation.retrieval import evaluate_retrieval
from loupe.evaluation.specs import parse_spec, parse_specs
from loupe.images import decode
from loupe.rerank import Reranker
from loupe.segment import Partitioner

COLOURS = {'red': (230, 20, 20), 'green': (20, 230, 20), 'blue': (20, 20, 230)}
KS = ('1', '5', '10')


# --- helpers ------------------------------------------------------------------------------------

def _noise(width, height, seed, level=60):
    rng = np.random.default_rng(seed)
    return rng.integers(0, level, size=(height, width, 3), dtype=np.uint8)


def _write_yolo(root: Path, images: dict, names) -> Path:
    """images: relative path under images/ -> (PIL image or JPEG bytes, label text or None)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / 'data.yaml').write_text('names:\n' + ''.join(f'  - {n}\n' for n in names))
    for rel, (image, labels) in images.items():
        path = root / 'images' / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(image, bytes):
            path.write_bytes(image)
        else:
            image.save(path)
        if labels is not None:
            label = (root / 'labels' / rel).with_suffix('.txt')
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(labels)
    (root / 'labels').mkdir(exist_ok=True)
    return root


def _coco128_truth(root: Path, limit: int):
    """(box area / image area, min side) of every labelled object of the first images, read
    straight from the label files."""
    names = sorted((root / 'images' / 'train2017').glob('*.jpg'))[:limit]
    shares, boxes = [], []
    for path in names:
        width, height = Image.open(path).size
        label = root / 'labels' / 'train2017' / (path.stem + '.txt')
        for line in (label.read_text().splitlines() if label.exists() else []):
            _, xc, yc, w, h = map(float, line.split())
            x1, y1 = max(0.0, (xc - w / 2) * width), max(0.0, (yc - h / 2) * height)
            x2, y2 = min(width, (xc + w / 2) * width), min(height, (yc + h / 2) * height)
            shares.append((x2 - x1) * (y2 - y1) / (width * height))
            boxes.append((path, width, height, (x1, y1, x2, y2)))
    return np.asarray(shares), boxes


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _assert_rates(values: dict):
    got = [values[k] for k in KS]
    assert all(0.0 <= v <= 1.0 for v in got)
    assert got == sorted(got), f'not monotone in k: {got}'


class ColourEmbedder:
    """Embeds a crop by the shares of its pixels near each named colour (plus a small constant
    so no crop is a zero vector); a text by the colour it names. A crop that is all red is
    exactly 'a photo of a red'."""

    dim = len(COLOURS) + 1

    def decode(self, data, boxes=None):
        return decode(data)

    def embed_images(self, images):
        rows = []
        for image in images:
            a = np.asarray(image.convert('RGB'), dtype=np.int64)
            shares = [(np.abs(a - c).sum(axis=-1) < 60).mean() for c in COLOURS.values()]
            v = np.asarray(shares + [0.02])
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32).reshape(-1, self.dim)

    def embed_texts(self, texts):
        return np.asarray([[float(n in t) for n in COLOURS] + [0.0] for t in texts],
                          dtype=np.float32)


class IndexEmbedder:
    """Image i (uniform, red = 10 * i) -> one-hot i; 'caption j of picture i' -> one-hot
    ``shift(i)``; ``constant`` embeds everything alike."""

    def __init__(self, n, shift=0, constant=False):
        self.n, self.shift, self.constant = n, shift, constant

    def decode(self, data, boxes=None):
        return decode(data)

    def _one_hot(self, i):
        v = np.zeros(self.n, dtype=np.float32)
        v[0 if self.constant else i % self.n] = 1.0
        return v

    def embed_images(self, images):
        return np.asarray([self._one_hot(int(np.asarray(im)[0, 0, 0]) // 10) for im in images])

    def embed_texts(self, texts):
        return np.asarray([self._one_hot(int(t.rsplit(' ', 1)[1]) + self.shift) for t in texts])


@pytest.fixture
def colour_set(tmp_path) -> Path:
    """Six 300x300 noise images, each with one coloured square filling one cell of a 3x3 grid;
    the square's colour is its class and the cell its box."""
    images = {}
    for i in range(6):
        name = list(COLOURS)[i % 3]
        row, col = divmod((2 * i + 1) % 9, 3)
        arr = _noise(300, 300, seed=i)
        arr[row * 100:(row + 1) * 100, col * 100:(col + 1) * 100] = COLOURS[name]
        xc, yc = (col + 0.5) / 3, (row + 0.5) / 3
        images[f'train/{i}.png'] = (Image.fromarray(arr),
                                    f'{i % 3} {xc} {yc} {1 / 3} {1 / 3}\n')
    return _write_yolo(tmp_path / 'colours', images, list(COLOURS))


@pytest.fixture
def caption_set(tmp_path) -> Path:
    """Karpathy layout: 8 uniform test images, 5 captions each, plus 2 training images."""
    root = tmp_path / 'flickr'
    (root / 'flickr30k-images').mkdir(parents=True)
    items = []
    for i in range(10):
        Image.new('RGB', (48, 32), (10 * i, 90, 40)).save(root / 'flickr30k-images' / f'{i}.png')
        items.append({'filename': f'{i}.png', 'split': 'test' if i < 8 else 'train',
                      'sentences': [{'raw': f'caption {j} of picture {i}'} for j in range(5)]})
    (root / 'dataset_flickr30k.json').write_text(json.dumps({'images': items}))
    return root


# --- readers ------------------------------------------------------------------------------------

def test_yolo_reader_gives_pixel_boxes_names_and_honours_split_and_limit(tmp_path):
    root = _write_yolo(tmp_path / 'y', {
        'val/a.png': (Image.new('RGB', (200, 100)),
                      '1 0.5 0.5 0.5 0.2\n0 0.1 0.1 0.3 0.1 0.2 0.3\n'),  # a box, a polygon
        'val/b.png': (Image.new('RGB', (50, 40)), None),  # no label file: no objects
        'train/c.png': (Image.new('RGB', (10, 10)), '0 0.5 0.5 1 1\n'),
    }, ['cat', 'dog'])
    ds = load_boxes(root, split='val')
    assert [p.path.name for p in ds.images] == ['a.png', 'b.png']
    a, b = ds.images
    assert (a.width, a.height) == (200, 100)
    np.testing.assert_allclose(a.boxes, [[50, 40, 150, 60], [20, 10, 60, 30]], atol=1e-4)
    assert a.labels == ('dog', 'cat')
    assert b.boxes.shape == (0, 4) and b.labels == ()
    assert ds.classes == ['cat', 'dog']
    assert [im.path.name for im in load_boxes(root, limit=1).images] == ['c.png']


def test_yolo_reader_scales_by_the_exif_oriented_size(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 200x100, shown rotated: 100 wide, 200 high
    data = jpeg_bytes(Image.new('RGB', (200, 100), (90, 90, 90)), exif=exif)
    root = _write_yolo(tmp_path / 'y', {'a.jpg': (data, '0 0.5 0.25 0.2 0.1\n')}, ['cat'])
    (im,) = load_boxes(root).images
    assert (im.width, im.height) == (100, 200)
    np.testing.assert_allclose(im.boxes, [[40, 40, 60, 60]], atol=1e-4)


def test_coco_reader_converts_xywh_skips_crowds_and_picks_the_split(tmp_path):
    root = tmp_path / 'coco'
    (root / 'annotations').mkdir(parents=True)
    (root / 'val2017').mkdir()
    Image.new('RGB', (64, 48)).save(root / 'val2017' / '000001.jpg')
    data = {'images': [{'id': 2, 'file_name': 'missing.jpg'},
                       {'id': 1, 'file_name': '000001.jpg'}],
            'categories': [{'id': 18, 'name': 'dog'}],
            'annotations': [
                {'id': 1, 'image_id': 1, 'category_id': 18, 'bbox': [4, 6, 10, 20], 'iscrowd': 0},
                {'id': 2, 'image_id': 1, 'category_id': 18, 'bbox': [0, 0, 30, 30], 'iscrowd': 1}]}
    for split in ('val2017', 'train2017'):
        (root / 'annotations' / f'instances_{split}.json').write_text(json.dumps(data))
    ds = load_boxes(root)  # two files: the val one
    assert ds.format == 'coco' and [im.path.name for im in ds.images] == ['000001.jpg']
    np.testing.assert_allclose(ds.images[0].boxes, [[4, 6, 14, 26]])
    assert ds.images[0].labels == ('dog',)
    assert len(ds.skipped) == 1 and 'missing.jpg' in ds.skipped[0]
    (root / 'annotations' / 'instances_test2017.json').write_text(json.dumps(data))
    annotations = root / 'annotations'
    (annotations / 'instances_val2017.json').rename(annotations / 'instances_x.json')
    with pytest.raises(DatasetError, match='--split'):
        load_boxes(root)
    assert load_boxes(root, split='train2017').images


def _flickr_files(root: Path, layout: str):
    pairs = [(f'{i}.png', f'caption {j} of picture {i}') for i in range(3) for j in range(6)]
    if layout == 'token':
        (root / 'results_20130124.token').write_text(
            ''.join(f'{name}#{n % 6}\t{c}\n' for n, (name, c) in enumerate(pairs)))
    elif layout == 'csv':
        with (root / 'captions.txt').open('w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['image', 'caption'])
            writer.writerows(pairs)
    elif layout == 'coco':
        (root / 'annotations').mkdir()
        (root / 'annotations' / 'captions_val2017.json').write_text(json.dumps({
            'images': [{'id': i, 'file_name': f'{i}.png'} for i in range(3)],
            'annotations': [{'id': n, 'image_id': int(name[0]), 'caption': c}
                            for n, (name, c) in enumerate(pairs)]}))
    else:
        (root / 'dataset_flickr8k.json').write_text(json.dumps({'images': [
            {'filename': f'{i}.png', 'split': 'test',
             'sentences': [{'raw': c} for name, c in pairs if name == f'{i}.png']}
            for i in range(3)]}))


@pytest.mark.parametrize('layout', ['karpathy', 'coco', 'token', 'csv'])
def test_caption_readers_agree_and_keep_five_captions_per_image(tmp_path, layout):
    root = tmp_path / layout
    (root / 'Images').mkdir(parents=True)
    for i in range(3):
        Image.new('RGB', (8, 8)).save(root / 'Images' / f'{i}.png')
    _flickr_files(root, layout)
    ds = load_captions(root)
    assert [im.path.name for im in ds.images] == ['0.png', '1.png', '2.png']
    assert ds.images[1].captions == tuple(f'caption {j} of picture 1' for j in range(5))
    assert len(load_captions(root, per_image=None).images[0].captions) == 6
    assert len(load_captions(root, limit=2).images) == 2


def test_karpathy_split_filter_and_layout_errors(caption_set, tmp_path):
    assert len(load_captions(caption_set).images) == 8  # the test split by default
    assert len(load_captions(caption_set, split='train').images) == 2
    assert len(load_captions(caption_set, split='all').images) == 10
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(DatasetError, match='no captions'):
        load_captions(empty)
    with pytest.raises(DatasetError, match='no box annotations'):
        load_boxes(empty)
    with pytest.raises(DatasetError, match='not a folder'):
        load_boxes(tmp_path / 'nowhere')


# --- method specs ---------------------------------------------------------------------------------

@pytest.mark.parametrize('spec, expected', [
    ('none', {'method': 'none'}),
    ('grid', {'method': 'grid', 'grid_rows': 3, 'grid_cols': 3}),
    ('grid:4x2', {'grid_rows': 4, 'grid_cols': 2}),
    ('grid:3x3+overlap0.25', {'grid_overlap': 0.25}),
    ('grid:3x3+levels2+max64', {'grid_levels': 2, 'max_boxes': 64}),
    ('detector+threshold0.5', {'method': 'detector', 'detector_threshold': 0.5}),
    ('dino+mode=sum+mass0.8', {'dino_mode': 'sum', 'dino_mass': 0.8}),
    ('dino+dino_size=224', {'dino_size': 224}),
])
def test_spec_sets_the_named_settings(spec, expected):
    settings = parse_spec(spec, Partitioner())
    assert {k: getattr(settings.settings, k) for k in expected} == expected


@pytest.mark.parametrize('spec', ['grd', 'none:3x3', 'grid:3by3', 'grid+overlap1.5',
                                  'grid+colour2', 'grid+levels', 'grid+method=none'])
def test_bad_specs_are_refused(spec):
    with pytest.raises(InvalidRequestError):
        parse_specs(spec, Partitioner())


# --- proposals ----------------------------------------------------------------------------------

def test_proposal_recall_matches_an_independent_count_on_coco128(coco128):
    limit = 12
    partitioner = Partitioner()
    specs = parse_specs('none,grid,grid:3x3+levels2+max64', partitioner)
    result = evaluate_proposals(load_boxes(coco128, limit=limit), specs, partitioner)
    shares, boxes = _coco128_truth(coco128, limit)
    none, grid, fine = (result['methods'][s.label] for s in specs)
    assert none['objects']['all'] == len(boxes) > 0
    # The whole image is the only chunk: an object inside it has IoU = its share of the area.
    for t in ('0.5', '0.3'):
        assert none['recall'][t]['all'] == pytest.approx(float(np.mean(shares >= float(t))))
    # The service's grid (3x3, neighbours sharing a quarter of a cell) plus the whole image,
    # computed here from the cell geometry: 3 cells of side s with 2 overlaps of s/4 span w.
    covered = []
    for _, w, h, box in boxes:
        sw, sh = w / 2.5, h / 2.5
        cells = [(c * 0.75 * sw, r * 0.75 * sh, c * 0.75 * sw + sw, r * 0.75 * sh + sh)
                 for r in range(3) for c in range(3)] + [(0, 0, w, h)]
        covered.append(max(_iou(box, cell) for cell in cells))
    assert grid['recall']['0.3']['all'] == pytest.approx(float(np.mean(np.asarray(covered) >= 0.3)))
    assert grid['chunks_per_image'] == {'mean': 10.0, 'max': 10}
    # More chunks (a superset) never cover fewer objects, in any size bucket.
    for bucket in ('small', 'medium', 'large', 'all'):
        for t in ('0.5', '0.3'):
            assert none['recall'][t][bucket] <= grid['recall'][t][bucket] \
                <= fine['recall'][t][bucket]
    assert fine['recall']['0.3']['all'] > none['recall']['0.3']['all']


def test_model_methods_report_bounded_recall(coco128, tiny_detector, tiny_dino):
    partitioner = Partitioner(detector_model=tiny_detector, dino_model=tiny_dino)
    specs = parse_specs('detector+threshold0.0+max8,dino+size64', partitioner)
    result = evaluate_proposals(load_boxes(coco128, limit=3), specs, partitioner)
    for label, max_boxes in (('detector+threshold0.0+max8', 8), ('dino+size64', 32)):
        r = result['methods'][label]
        assert r['images'] == 3 and 1 <= r['chunks_per_image']['max'] <= 1 + max_boxes
        for bucket, value in r['recall']['0.5'].items():
            if value is not None:
                assert 0.0 <= value <= r['recall']['0.3'][bucket] <= 1.0


# --- localised retrieval ------------------------------------------------------------------------

def test_retrieval_finds_and_highlights_a_known_answer(colour_set):
    partitioner = Partitioner()
    specs = parse_specs('none,grid', partitioner)
    result = evaluate_retrieval(load_boxes(colour_set), specs, partitioner, ColourEmbedder())
    none, grid = result['rows']['none'], result['rows']['grid']
    assert result['queries'] == 3
    for row in (none, grid):  # two relevant images per colour, both ranked first
        assert row['map'] == pytest.approx(1.0)
        assert row['recall'] == {'1': 0.5, '5': 1.0, '10': 1.0}
        assert row['precision']['1'] == 1.0 and row['hit']['1'] == 1.0
    # Only the grid can point at the square: the whole image overlaps it by 1/9.
    assert grid['highlight_hit'] == 1.0 and grid['highlights'] == 6
    assert none['highlight_hit'] == 0.0


def test_retrieval_on_coco128_with_tiny_models_and_reranking(coco128, tiny_clip, tiny_owlvit):
    from loupe.clip import ClipEmbedder

    dataset = load_boxes(coco128, limit=8)
    partitioner = Partitioner()
    specs = parse_specs('none,grid', partitioner)
    stage = RerankStage(Reranker(tiny_owlvit), [im.path for im in dataset.images], top=3)
    result = evaluate_retrieval(dataset, specs, partitioner, ClipEmbedder(tiny_clip), stage)
    _, objects = _coco128_truth(coco128, 8)
    labels = {line.split()[0] for p in {o[0] for o in objects}
              for line in (coco128 / 'labels' / 'train2017' / (p.stem + '.txt')).read_text()
              .splitlines()}
    assert result['queries'] == len(labels)
    assert set(result['rows']) == {'none', 'none+rerank', 'grid', 'grid+rerank'}
    for label, row in result['rows'].items():
        _assert_rates(row['recall'])
        _assert_rates(row['hit'])
        assert all(0.0 <= v <= 1.0 for v in row['precision'].values())
        assert 0.0 <= row['map'] <= 1.0 and 0.0 <= row['highlight_hit'] <= 1.0
        assert row['chunks'] == 8 * (1 if label.startswith('none') else 10)
    for method in ('none', 'grid'):  # reranking the top 3 reorders only them
        plain, reranked = result['rows'][method], result['rows'][f'{method}+rerank']
        assert plain['recall']['5'] == reranked['recall']['5']
        assert plain['recall']['10'] == reranked['recall']['10']


# --- caption retrieval --------------------------------------------------------------------------

@pytest.mark.parametrize('embedder, expected', [
    (IndexEmbedder(8), 1.0),  # caption i <-> image i
    (IndexEmbedder(8, shift=1), 0.0),  # every caption points at the next image
    (IndexEmbedder(8, constant=True), 0.0),  # ties count against the query
])
def test_caption_recall_at_1_on_a_known_answer(caption_set, embedder, expected):
    result = evaluate_captions(load_captions(caption_set), embedder)
    assert (result['images'], result['captions']) == (8, 40)
    assert result['text_to_image']['1'] == expected
    assert result['image_to_text']['1'] == expected


def test_caption_recall_with_tiny_clip_is_bounded_and_monotone(caption_set, tiny_clip):
    from loupe.clip import ClipEmbedder

    result = evaluate_captions(load_captions(caption_set), ClipEmbedder(tiny_clip))
    _assert_rates(result['text_to_image'])
    _assert_rates(result['image_to_text'])
    assert result['text_to_image']['10'] == 1.0  # 8 images: every one is in the top 10


# --- query by example ---------------------------------------------------------------------------

@pytest.fixture
def distinct_set(tmp_path) -> Path:
    """Five distinct patterned images; each object is one 3x3 grid cell; one object is tiny."""
    images = {}
    for i in range(5):
        arr = _noise(300, 300, seed=10 + i, level=255)
        arr[:, :, i % 3] = np.linspace(0, 255, 300, dtype=np.uint8)[None, :]
        row, col = divmod((3 * i + 2) % 9, 3)
        labels = f'0 {(col + 0.5) / 3} {(row + 0.5) / 3} {1 / 3} {1 / 3}\n'
        if i == 0:
            labels += '0 0.5 0.5 0.05 0.05\n'  # 15 px: too small to be a query
        images[f'{i}.png'] = (Image.fromarray(arr), labels)
    return _write_yolo(tmp_path / 'distinct', images, ['thing'])


def test_query_by_example_finds_the_source_and_the_crop(distinct_set, tiny_clip):
    from loupe.clip import ClipEmbedder

    dataset = load_boxes(distinct_set)
    assert len(select_queries(dataset)) == 5
    assert len(select_queries(dataset, max_queries=2)) == 2
    partitioner = Partitioner()
    specs = parse_specs('none,grid+overlap0', partitioner)
    result = evaluate_query_by_example(dataset, specs, partitioner, ClipEmbedder(tiny_clip))
    assert result['queries'] == 5
    grid, none = result['rows']['grid+overlap0'], result['rows']['none']
    # The crop is one of the plain tiling's cells: found first, highlighted exactly.
    assert grid['recall']['1'] == 1.0
    assert grid['highlight_iou'] == pytest.approx(1.0, abs=1e-6)
    assert grid['highlight_hit'] == 1.0
    # Whole images only: the highlight is the whole image, IoU 1/9 with a cell.
    assert none['highlight_iou'] == pytest.approx(1 / 9, abs=1e-4)
    assert none['highlight_hit'] == 0.0


def test_query_by_example_on_coco128_with_image_guided_reranking(coco128, tiny_clip, tiny_owlvit):
    from loupe.clip import ClipEmbedder

    dataset = load_boxes(coco128, limit=5)
    partitioner = Partitioner()
    specs = parse_specs('grid', partitioner)
    stage = RerankStage(Reranker(tiny_owlvit), [im.path for im in dataset.images], top=3)
    result = evaluate_query_by_example(dataset, specs, partitioner, ClipEmbedder(tiny_clip),
                                       stage, max_queries=6)
    _, objects = _coco128_truth(coco128, 5)
    big = sum(min(b[2] - b[0], b[3] - b[1]) >= 32 for *_, b in objects)
    assert result['queries'] == min(6, big)
    for row in result['rows'].values():
        _assert_rates(row['recall'])
        assert 0.0 <= row['highlight_iou'] <= 1.0
    assert result['rows']['grid']['recall']['5'] == result['rows']['grid+rerank']['recall']['5']


# --- CLI ----------------------------------------------------------------------------------------

def test_cli_proposals_prints_a_table_and_writes_json_and_plots(coco128, tmp_path, capsys):
    out, plots = tmp_path / 'r.json', tmp_path / 'plots'
    code = main(['eval', 'proposals', '--data', str(coco128), '--methods', 'none,grid:2x2',
                 '--limit-images', '4', '--json', str(out), '--plot', str(plots), '--quiet'])
    assert code == 0
    printed = capsys.readouterr().out
    assert '| method' in printed and 'grid:2x2' in printed
    result = json.loads(out.read_text())
    assert result['evaluation'] == 'proposals' and result['dataset']['images'] == 4
    assert list(result['methods']) == ['none', 'grid:2x2']
    row = result['methods']['grid:2x2']
    assert {'settings', 'images', 'objects', 'recall', 'mean_best_iou', 'chunks_per_image',
            'failed', 'seconds'} <= set(row)
    assert set(row['recall']) == {'0.5', '0.3'}
    assert row['chunks_per_image']['max'] == 5
    pngs = sorted(plots.glob('*.png'))
    assert [p.name for p in pngs] == ['proposals_by_size.png', 'proposals_recall.png']
    assert all(p.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' for p in pngs)


def test_cli_captions_and_errors(caption_set, tiny_clip, tmp_path, capsys):
    out = tmp_path / 'c.json'
    assert main(['eval', 'captions', '--data', str(caption_set), '--clip-model', tiny_clip,
                 '--json', str(out), '--quiet']) == 0
    result = json.loads(out.read_text())
    assert {'text_to_image', 'image_to_text', 'images', 'captions', 'models'} <= set(result)
    assert result['images'] == 8 and set(result['text_to_image']) == set(KS)
    capsys.readouterr()
    assert main(['eval', 'proposals', '--data', str(caption_set), '--methods', 'grid']) == 2
    assert 'no box annotations' in capsys.readouterr().err
    assert main(['eval', 'proposals', '--data', str(caption_set), '--methods', 'grd']) == 2
    assert "unknown method 'grd'" in capsys.readouterr().err
