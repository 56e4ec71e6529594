"""Session fixtures: tiny random checkpoints on disk, the coco128 photos, synthetic images."""
import os

# Before jina is imported anywhere: bind to loopback, no banner, no telemetry.
os.environ.setdefault('JINA_DEFAULT_HOST', '127.0.0.1')
os.environ.setdefault('JINA_HIDE_SURVEY', '1')
os.environ.setdefault('JINA_OPTOUT_TELEMETRY', '1')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
# Tests choose their own models, workspaces and services: settings exported in the shell (the
# README's offline path exports LOUPE_CLIP_MODEL=..., say) must not leak into them.
for _name in [n for n in os.environ if n.startswith('LOUPE_')]:
    del os.environ[_name]

import contextlib  # noqa: E402
import io  # noqa: E402
import multiprocessing  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from loupe import tiny_models  # noqa: E402

torch.set_num_threads(1)
# Flows started in this process spawn their executors instead of forking it: tests run models
# in-process first, and torch's OpenMP (libgomp) is not fork-safe, so a forked executor could
# hang in its first parallel region (seen twice: CLIP's layer_norm at start-up, in a fixture).
# Only this process: the commands the tests run (loupe index, loupe serve) fork as users' do.
multiprocessing.set_start_method('spawn', force=True)

COCO128 = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'coco128'


@pytest.fixture(scope='session')
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('models')


@pytest.fixture(scope='session')
def tiny_clip(models_dir) -> str:
    return tiny_models.build_clip(models_dir / 'clip')


@pytest.fixture(scope='session')
def tiny_owlvit(models_dir) -> str:
    return tiny_models.build_owlvit(models_dir / 'owlvit')


@pytest.fixture(scope='session')
def tiny_owlv2(models_dir) -> str:
    return tiny_models.build_owlv2(models_dir / 'owlv2')


@pytest.fixture(scope='session')
def tiny_detector(models_dir) -> str:
    return tiny_models.build_detector(models_dir / 'detector')


@pytest.fixture(scope='session')
def tiny_dino(models_dir) -> str:
    return tiny_models.build_dino(models_dir / 'dino')


@pytest.fixture(scope='session')
def tiny_dinov2(models_dir) -> str:
    return tiny_models.build_dinov2(models_dir / 'dinov2')


@pytest.fixture(scope='session')
def coco128() -> Path:
    """Root of the coco128 set (images/train2017, labels/train2017); skips where absent."""
    if not (COCO128 / 'images' / 'train2017').is_dir():
        pytest.skip(f'coco128 not found at {COCO128}')
    return COCO128


@pytest.fixture(scope='session')
def coco_images(coco128) -> list:
    return sorted((coco128 / 'images' / 'train2017').glob('*.jpg'))


@pytest.fixture(scope='session')
def photo_paths(tmp_path_factory) -> list:
    """Photos for the end-to-end tests: six of coco128 where it is present and six of the
    synthetic set (tests/photos.py), else twelve synthetic ones: the flows always run."""
    from photos import write_photo_set

    synthetic = write_photo_set(tmp_path_factory.mktemp('synthetic-photos'))
    coco = sorted((COCO128 / 'images' / 'train2017').glob('*.jpg'))
    return coco[:6] + synthetic[:6] if coco else synthetic


def jpeg_bytes(img: Image.Image, **save_kwargs) -> bytes:
    out = io.BytesIO()
    img.save(out, format='JPEG', **save_kwargs)
    return out.getvalue()


def synthetic_image(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """A textured background with one red square, so crops differ from the whole."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    arr[height // 4: height // 2, width // 4: width // 2] = (220, 20, 20)
    return Image.fromarray(arr)


@pytest.fixture
def synthetic_jpeg() -> bytes:
    return jpeg_bytes(synthetic_image())


@contextlib.contextmanager
def environment(values: dict):
    """Set environment variables for a block (flows read models and the workspace from them,
    as a user would set them), then restore what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield values
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
