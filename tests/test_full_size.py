"""The default architectures at full size (random weights): shapes, geometry, reference equality.

Tiny models prove the plumbing; these prove the code also holds for the real configurations
(ViT-B/32 CLIP at 224 px with 512-d embeddings, OWL-ViT B/32 at 768 px, a ViT-S/16 DINO and a
D-FINE detector). Checkpoints are built once into workspace/bench-models (shared with bench/).
"""
import numpy as np
import pytest
import torch
from transformers import CLIPModel, CLIPProcessor, DFineConfig, DFineForObjectDetection, \
    RTDetrImageProcessor, ViTConfig, ViTImageProcessor, ViTModel

from bench.models import checkpoint
from loupe.constants import ENV_CLIP_MODEL, ENV_DETECTOR_MODEL, ENV_DINO_MODEL, ENV_OWL_MODEL
from loupe.flows import PROJECT_ROOT
from loupe.images import load
from loupe.rerank import Reranker
from loupe.segment import Partitioner

pytestmark = pytest.mark.slow
MODELS = PROJECT_ROOT / 'workspace' / 'bench-models'


@pytest.fixture(autouse=True)
def no_model_settings(monkeypatch):
    """The environment would win over the checkpoints these tests name."""
    for env in (ENV_CLIP_MODEL, ENV_OWL_MODEL, ENV_DETECTOR_MODEL, ENV_DINO_MODEL):
        monkeypatch.delenv(env, raising=False)


@pytest.fixture(scope='module')
def photos(coco_images):
    return [load(uri=str(p)) for p in coco_images[:2]]


def test_clip_b32_region_embeddings_equal_the_reference_model(photos):
    from loupe.clip import ClipEmbedder

    folder = checkpoint('clip', False, MODELS)
    embedder = ClipEmbedder(folder, device='cpu')
    boxes = [[0, 0, photos[0].width, photos[0].height], [10, 20, 300, 260]]
    vectors = embedder.embed_regions(photos[0], boxes)
    assert vectors.shape == (2, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    model, processor = CLIPModel.from_pretrained(folder), CLIPProcessor.from_pretrained(folder)
    crop = photos[0].crop(boxes[1])
    with torch.inference_mode():
        reference = model(**processor(text=['x'], images=[crop], return_tensors='pt'))
    expected = torch.nn.functional.normalize(reference.image_embeds, dim=-1)[0].numpy()
    np.testing.assert_allclose(vectors[1], expected, atol=1e-4)


def test_owlvit_b32_boxes_are_inside_the_photos_and_batching_changes_nothing(photos):
    reranker = Reranker(checkpoint('owl', False, MODELS), device='cpu', batch_size=2)
    batched = reranker.detect_text(photos, 'a dog')
    single = [reranker.detect_text([p], 'a dog')[0] for p in photos]
    for photo, (score, box), (score_1, box_1) in zip(photos, batched, single):
        x1, y1, x2, y2 = box
        assert 0 <= x1 <= x2 <= photo.width and 0 <= y1 <= y2 <= photo.height
        assert score == pytest.approx(score_1, abs=1e-4)
        np.testing.assert_allclose(box, box_1, atol=0.5)


@pytest.fixture(scope='module')
def full_size_partitioner(tmp_path_factory):
    root = tmp_path_factory.mktemp('full-size')
    torch.manual_seed(0)
    ViTModel(ViTConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                       intermediate_size=1536, patch_size=16, image_size=224),
             add_pooling_layer=False).save_pretrained(root / 'dino')
    ViTImageProcessor().save_pretrained(root / 'dino')
    DFineForObjectDetection(DFineConfig()).save_pretrained(root / 'dfine')
    RTDetrImageProcessor().save_pretrained(root / 'dfine')
    return Partitioner(dino_model=str(root / 'dino'), detector_model=str(root / 'dfine'),
                       device='cpu', detector_threshold=0.0)


@pytest.mark.parametrize('method', ['dino', 'detector'])
def test_partition_models_at_full_size_give_boxes_in_original_pixels(
        full_size_partitioner, photos, method):
    settings = full_size_partitioner.resolve(method=method)
    for photo, proposals in zip(photos, full_size_partitioner.partition(photos, settings)):
        assert proposals[0].kind == 'whole'
        assert proposals[0].box == [0, 0, photo.width, photo.height]
        assert len(proposals) > 1, 'no boxes: nothing below was checked'
        for p in proposals[1:]:
            x1, y1, x2, y2 = p.box
            assert 0 <= x1 < x2 <= photo.width and 0 <= y1 < y2 <= photo.height
