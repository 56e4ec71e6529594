"""Readers of box-annotated and captioned image sets, as they are laid out when downloaded.

Box-annotated (``load_boxes``):

- YOLO: ``DIR/images/**/<name>.<ext>`` with ``DIR/labels/**/<name>.txt`` beside them (same
  sub-path), one ``class xc yc w h`` row per object, relative to the image size (a polygon row
  ``class x1 y1 x2 y2 ...`` counts as its bounding box); class names from ``names:`` of a
  ``*.yaml`` in DIR. An image without a label file has no objects. coco128 is this layout.
- COCO: ``DIR/annotations/instances_*.json`` plus the images anywhere under DIR (found by file
  name); crowd regions are left out, as COCO's own evaluation ignores them.

Captioned (``load_captions``), first match wins: Karpathy splits (``dataset_flickr30k.json``,
``dataset_flickr8k.json``, ``dataset_coco.json``), COCO ``captions_*.json``, Flickr's
``results_20130124.token`` / ``Flickr8k.token.txt`` (``<image>#<n>\\t<caption>``), Kaggle's
``captions.txt`` (CSV ``image,caption``). Each file is looked for in DIR and its sub-folders one
level down; images anywhere under DIR, by file name.

Boxes come out as ``[x1, y1, x2, y2]`` in original pixels, the size read from each image's header
with EXIF orientation applied. Images are sorted (by path, COCO by id) so ``limit`` is repeatable.
"""
import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from loupe.boxes import as_boxes, clip_to_image
from loupe.constants import IMAGE_EXTENSIONS
from loupe.errors import ImageLoadError, LoupeError
from loupe.evaluation.defaults import DEFAULT_CAPTIONS_PER_IMAGE
from loupe.images import image_size

KARPATHY_FILES = ('dataset_flickr30k.json', 'dataset_flickr8k.json', 'dataset_coco.json')
KARPATHY_DEFAULT_SPLIT = 'test'
ALL_SPLITS = 'all'
TOKEN_FILES = ('results_20130124.token', 'Flickr8k.token.txt', 'results.token')


class DatasetError(LoupeError):
    """A data folder is missing, in no known layout, or ambiguous."""


@dataclass(frozen=True)
class Annotated:
    """One image with its ground-truth objects."""

    path: Path
    width: int  # original, EXIF orientation applied
    height: int
    boxes: np.ndarray  # (n, 4) float32 [x1, y1, x2, y2], original pixels
    labels: Tuple[str, ...]


@dataclass(frozen=True)
class Captioned:
    path: Path
    captions: Tuple[str, ...]


@dataclass
class BoxDataset:
    root: Path
    format: str  # 'yolo' or 'coco'
    images: List[Annotated]
    skipped: List[str] = field(default_factory=list)  # 'file: reason' of unreadable images

    @property
    def classes(self) -> List[str]:
        """Names of the classes with at least one object, sorted."""
        return sorted({label for im in self.images for label in im.labels})

    def describe(self) -> dict:
        return {'root': str(self.root), 'format': self.format, 'images': len(self.images),
                'objects': sum(len(im.labels) for im in self.images),
                'classes': len(self.classes), 'skipped': self.skipped}


@dataclass
class CaptionDataset:
    root: Path
    format: str  # 'karpathy', 'coco', 'flickr-token' or 'captions-csv'
    images: List[Captioned]
    skipped: List[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {'root': str(self.root), 'format': self.format, 'images': len(self.images),
                'captions': sum(len(im.captions) for im in self.images), 'skipped': self.skipped}


def _root(path) -> Path:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f'{root}: not a folder')
    return root


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


class _ImageFiles:
    """Images under a root, looked up by relative path or, failing that, by file name."""

    def __init__(self, root: Path):
        self.root = root
        self._by_name: Optional[Dict[str, List[Path]]] = None

    def find(self, name: str, folder: str = '') -> Optional[Path]:
        for candidate in (self.root / folder / name, self.root / 'images' / folder / name):
            if candidate.is_file():
                return candidate
        if self._by_name is None:
            self._by_name = defaultdict(list)
            for p in sorted(self.root.rglob('*')):
                if _is_image(p):
                    self._by_name[p.name].append(p)
        found = self._by_name.get(Path(name).name, [])
        # Same file name in several folders (e.g. train/val copies): prefer the named folder.
        return next((p for p in found if folder and folder in p.parts), found[0] if found else None)


def _pick(files: Sequence[Path], split: Optional[str], what: str, root: Path) -> Path:
    """The one annotation file of ``split`` (a substring of its name), else the only or val one."""
    if split:
        files = [f for f in files if split in f.name]
    elif len(files) > 1:
        files = [f for f in files if 'val' in f.name] or files
    if len(files) != 1:
        found = ', '.join(f.name for f in files) or 'none'
        of_split = f' of split {split!r}' if split else ''
        raise DatasetError(f'{root}: expected one {what} file{of_split}, found {found}; '
                           'choose one with --split')
    return files[0]


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as e:
        raise DatasetError(f'{path}: cannot read: {e}') from e


def _near(root: Path, patterns: Iterable[str]) -> List[Path]:
    """Files matching any pattern in ``root`` or one folder down, sorted."""
    out = set()
    for pattern in patterns:
        out.update(p for p in root.glob(pattern) if p.is_file())
        out.update(p for p in root.glob(f'*/{pattern}') if p.is_file())
    return sorted(out)


# --- box-annotated sets -------------------------------------------------------------------------

def load_boxes(path, split: Optional[str] = None, limit: Optional[int] = None) -> BoxDataset:
    """A YOLO or COCO-json box-annotated set; ``split`` names a sub-folder of ``images/`` (YOLO)
    or a part of the annotation file's name (COCO); ``limit`` keeps the first N images."""
    root = _root(path)
    coco = sorted((root / 'annotations').glob('instances_*.json'))
    if coco:
        return _coco_boxes(root, _pick(coco, split, 'instances_*.json', root), limit)
    if (root / 'labels').is_dir() and (root / 'images').is_dir():
        return _yolo_boxes(root, split, limit)
    raise DatasetError(f'{root}: no box annotations found: expected images/ + labels/ (YOLO) or '
                       'annotations/instances_*.json (COCO)')


def _header_size(path: Path) -> Tuple[int, int]:
    try:
        return image_size(path.read_bytes())
    except OSError as e:
        raise ImageLoadError(f'cannot read: {e}') from e


def _yolo_names(root: Path) -> Dict[int, str]:
    for config in sorted(root.glob('*.yaml')) + sorted(root.glob('*.yml')):
        try:
            data = yaml.safe_load(config.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise DatasetError(f'{config}: not a readable YAML file: {e}') from e
        names = data.get('names') if isinstance(data, dict) else None
        if isinstance(names, dict):
            return {int(k): str(v) for k, v in names.items()}
        if isinstance(names, list):
            return dict(enumerate(map(str, names)))
    return {}  # labels stay class numbers


def _yolo_rows(text: str, width: int, height: int, names: Dict[int, str], where: Path):
    boxes, labels = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls, values = int(float(parts[0])), [float(v) for v in parts[1:]]
        except ValueError:
            raise DatasetError(f'{where}:{n}: not a YOLO row: {line!r}') from None
        if len(values) == 4:
            xc, yc, w, h = values
            box = [xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2]
        elif len(values) >= 6 and len(values) % 2 == 0:  # segmentation polygon
            xs, ys = values[0::2], values[1::2]
            box = [min(xs), min(ys), max(xs), max(ys)]
        else:
            raise DatasetError(f'{where}:{n}: expected class xc yc w h, got {line!r}')
        boxes.append([box[0] * width, box[1] * height, box[2] * width, box[3] * height])
        labels.append(names.get(cls, str(cls)))
    return clip_to_image(boxes, width, height), tuple(labels)


def _yolo_boxes(root: Path, split: Optional[str], limit: Optional[int]) -> BoxDataset:
    image_root = root / 'images'
    folder = image_root / split if split else image_root
    if not folder.is_dir():
        raise DatasetError(f'{folder}: no such split folder')
    files = sorted(p for p in folder.rglob('*') if _is_image(p))[:limit]
    names = _yolo_names(root)
    images, skipped = [], []
    for path in files:
        try:
            width, height = _header_size(path)
        except ImageLoadError as e:
            skipped.append(f'{path}: {e}')
            continue
        label_file = (root / 'labels' / path.relative_to(image_root)).with_suffix('.txt')
        text = label_file.read_text() if label_file.is_file() else ''
        boxes, labels = _yolo_rows(text, width, height, names, label_file)
        images.append(Annotated(path, width, height, boxes, labels))
    return BoxDataset(root, 'yolo', images, skipped)


def _coco_boxes(root: Path, annotations: Path, limit: Optional[int]) -> BoxDataset:
    data = _read_json(annotations)
    categories = {c['id']: c['name'] for c in data.get('categories', [])}
    objects = defaultdict(list)
    for a in data.get('annotations', []):
        x, y, w, h = a['bbox']
        if not a.get('iscrowd') and w > 0 and h > 0:
            objects[a['image_id']].append(([x, y, x + w, y + h],
                                           categories.get(a['category_id'], str(a['category_id']))))
    files = _ImageFiles(root)
    images, skipped = [], []
    for info in sorted(data.get('images', []), key=lambda i: i['id'])[:limit]:
        path = files.find(info['file_name'])
        if path is None:
            skipped.append(f'{info["file_name"]}: not found under {root}')
            continue
        try:
            width, height = _header_size(path)
        except ImageLoadError as e:
            skipped.append(f'{path}: {e}')
            continue
        found = objects.get(info['id'], [])
        boxes = clip_to_image([b for b, _ in found], width, height)
        images.append(Annotated(path, width, height, as_boxes(boxes),
                                tuple(label for _, label in found)))
    return BoxDataset(root, 'coco', images, skipped)


# --- captioned sets -----------------------------------------------------------------------------

def load_captions(path, split: Optional[str] = None, limit: Optional[int] = None,
                  per_image: Optional[int] = DEFAULT_CAPTIONS_PER_IMAGE) -> CaptionDataset:
    """A captioned set; ``per_image`` keeps the first N captions of each image (None: all).

    ``split``: for Karpathy files the split to keep (default ``test``; ``all`` keeps every image),
    for COCO a part of the ``captions_*.json`` name; the Flickr token and CSV files have none.
    """
    root = _root(path)
    karpathy = _near(root, KARPATHY_FILES)
    coco = _near(root, ['captions_*.json'])
    tokens = _near(root, TOKEN_FILES)
    csv_files = _near(root, ['captions.txt'])
    if karpathy:
        fmt, entries = 'karpathy', _karpathy(karpathy[0], split or KARPATHY_DEFAULT_SPLIT)
    elif coco:
        fmt, entries = 'coco', _coco_captions(_pick(coco, split, 'captions_*.json', root))
    elif tokens or csv_files:
        if split:
            raise DatasetError(f'{root}: this layout has no splits; leave out --split')
        fmt = 'flickr-token' if tokens else 'captions-csv'
        entries = _token_captions(tokens[0]) if tokens else _csv_captions(csv_files[0])
    else:
        raise DatasetError(f'{root}: no captions found: expected {", ".join(KARPATHY_FILES)}, '
                           f'captions_*.json, {", ".join(TOKEN_FILES)} or captions.txt')
    files = _ImageFiles(root)
    images, skipped = [], []
    for (folder, name), captions in entries:
        if limit is not None and len(images) >= limit:
            break
        captions = tuple(c.strip() for c in captions if c and c.strip())[:per_image]
        if not captions:
            continue
        found = files.find(name, folder)
        if found is None:
            skipped.append(f'{name}: not found under {root}')
            continue
        images.append(Captioned(found, captions))
    return CaptionDataset(root, fmt, images, skipped)


Entries = List[Tuple[Tuple[str, str], List[str]]]  # ((folder, file name), captions), in order


def _karpathy(path: Path, split: str) -> Entries:
    out = []
    for item in _read_json(path)['images']:
        if split != ALL_SPLITS and item.get('split') != split:
            continue
        captions = [s.get('raw') or ' '.join(s.get('tokens', [])) for s in item['sentences']]
        out.append(((item.get('filepath', ''), item['filename']), captions))
    if not out:
        raise DatasetError(f'{path}: no image in split {split!r}')
    return out


def _coco_captions(path: Path) -> Entries:
    data = _read_json(path)
    captions = defaultdict(list)
    for a in sorted(data.get('annotations', []), key=lambda a: a['id']):
        captions[a['image_id']].append(a['caption'])
    return [(('', info['file_name']), captions[info['id']])
            for info in sorted(data.get('images', []), key=lambda i: i['id'])]


def _grouped(pairs: Iterable[Tuple[str, str]]) -> Entries:
    captions: Dict[str, List[str]] = {}  # insertion order: first appearance of each image
    for name, caption in pairs:
        captions.setdefault(name.strip(), []).append(caption)
    return [(('', name), caps) for name, caps in captions.items()]


def _token_captions(path: Path) -> Entries:
    def pairs():
        for line in path.read_text(encoding='utf-8').splitlines():
            key, sep, caption = line.partition('\t')
            if sep:
                yield key.rsplit('#', 1)[0], caption
    return _grouped(pairs())


def _csv_captions(path: Path) -> Entries:
    with path.open(newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    if rows and not {'image', 'caption'} <= set(rows[0]):
        raise DatasetError(f'{path}: expected a CSV with the columns image,caption')
    return _grouped((row['image'], row['caption']) for row in rows)
