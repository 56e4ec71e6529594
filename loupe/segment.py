"""Partitioning images into regions worth embedding on their own (chunks).

Every method yields proposals in original-image pixels (EXIF orientation applied): the whole
image first, then the method's boxes after one shared post-processing step (``finalize``).
Methods: ``none`` (whole image only), ``grid`` (a tiling), ``detector`` (a COCO object
detector through transformers), ``dino`` (attention saliency of a self-supervised ViT).
"""
from typing import Callable, Dict, List, Optional, Sequence

from loupe.config import SegmenterSettings, build, names
from loupe.errors import ConfigError, InvalidRequestError
from loupe.images import DecodedImage
from loupe.models import choose
from loupe.segmentation.detector import detector_candidates
from loupe.segmentation.dino import dino_candidates
from loupe.segmentation.grid import grid_candidates, none_candidates
from loupe.segmentation.model_cache import ModelCache
from loupe.segmentation.proposals import Proposal, finalize

__all__ = ['Partitioner', 'Proposal', 'Settings', 'METHODS', 'decode_side', 'max_chunks']

# Shorter side (pixels) each method needs decoded, so JPEGs can be draft-decoded (much faster).
# Grid needs only the size, but decoding a small draft still catches broken files; detectors
# of the DETR family take at most 800 (D-FINE 640); dino needs ``dino_size``.
_DECODE_SIDE = {'none': 64, 'grid': 64, 'detector': 800}

Settings = SegmenterSettings  # the partitioner's settings are the segmenter executor's
SETTING_NAMES = names(Settings)


def make_settings(base: Settings, overrides: Optional[dict] = None,
                  error=InvalidRequestError) -> Settings:
    """``base`` with ``overrides`` applied and checked; unknown names are an error."""
    return build(Settings, overrides, base=base, error=error)


METHODS: Dict[str, Callable] = {'none': none_candidates, 'grid': grid_candidates,
                                'detector': detector_candidates, 'dino': dino_candidates}

def decode_side(s: Settings) -> int:
    """Shorter side, in pixels, that ``s.method`` needs images decoded at."""
    return s.dino_size if s.method == 'dino' else _DECODE_SIDE[s.method]


def max_chunks(s: Settings) -> int:
    """Upper bound of chunks per image (whole image included), to size an index."""
    if s.method == 'none':
        return 1
    if s.method == 'grid':
        cells = sum(s.grid_rows * s.grid_cols * k * k for k in range(1, s.grid_levels + 1))
        return 1 + min(s.max_boxes, cells)
    return 1 + s.max_boxes


class Partitioner:
    """Holds default settings and loaded models; partitions decoded images into proposals."""

    def __init__(self, base: Optional[Settings] = None, **defaults):
        self.settings = make_settings(base or Settings(), defaults, error=ConfigError)
        self.models = ModelCache()

    def resolve(self, **overrides) -> Settings:
        return make_settings(self.settings, overrides)

    def partition(self, images: Sequence[DecodedImage], settings: Optional[Settings] = None
                  ) -> List[List[Proposal]]:
        """Proposals per image, whole image first; model methods run batched over images."""
        s = settings or self.settings
        if not images:
            return []
        candidates = choose(METHODS, s.method, 'partition method')(images, s, self.models)
        return [finalize(c, d.width, d.height, s) for c, d in zip(candidates, images)]
