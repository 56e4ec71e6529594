"""Second stage: find the query inside each candidate image with OWL-ViT / OWLv2, score and box it.

Scoring. An image's detection score is the highest probability (sigmoid of the class logit) that
any of its patch boxes centred inside the image shows the query (boxes centred on the padding
describe the padding); the box of that patch is the highlight. It is combined with the
first-stage score by

    final = (1 - rerank_weight) * chunk_score + rerank_weight * detection_score

with ``DEFAULT_RERANK_WEIGHT = 0.5``. Why a blend, and why equal weights: CLIP text-to-image
cosines of a query's top results sit in a narrow band (about 0.2-0.35), while OWL detection scores
spread from ~0 (object absent) to 0.3-0.6 (present). With equal weights the detector therefore
decides the order wherever it recognises the query, which is what a reranker is for, and the
first-stage score still orders the results where the detector finds nothing (all scores ~0.0x),
where a pure detection ranking would be noise. ``rerank_weight=1`` ranks by detection alone,
``0`` keeps the first-stage order and only replaces the boxes. The default is reasoned from the
published score ranges, not tuned on labelled data (none is available here).

Geometry. Each image is resized (longest side = the model's input size) and padded bottom/right
with grey to a square here, before the processor, which then only rescales and normalises: OWL-ViT's
processor would squash the image, and OWLv2's PIL processor needs scipy and pads with black in
transformers 5 (the original OWLv2 pads with grey). A predicted box, normalised to the padded
square, maps back by one factor per axis: ``input_size * original_side / resized_side`` (the
resized content covers exactly [0, resized_side) of the input), clipped to the image.
Query images for image-guided detection follow each model's own convention: OWL-ViT picks the
query embedding of the box closest to the whole frame, so its query image is resized to the square
without padding; OWLv2 picks the most object-like box, so its query image is padded like targets.
"""
from dataclasses import dataclass
from typing import Callable, List, NamedTuple, Optional, Sequence, Union

import torch
from PIL import Image
from transformers import (
    AutoConfig,
    Owlv2ForObjectDetection,
    Owlv2Processor,
    OwlViTForObjectDetection,
    OwlViTProcessor,
)
from transformers.image_transforms import center_to_corners_format

from loupe.boxes import as_boxes, clip_to_image, generalized_iou, to_list
from loupe.config import RerankerSettings, spec_of
from loupe.constants import (DEFAULT_OWL_MODEL, ENV_OWL_MODEL, SCORE_CHUNK, SCORE_FINAL,
                             SCORE_RERANK, SOURCE_RERANKER)
from loupe.errors import InvalidRequestError
from loupe.images import DecodedImage
from loupe.models import choose, from_pretrained, resolve_checkpoint, resolve_device, resolve_dtype
from loupe.schema import Match

DEFAULT_RERANK_WEIGHT = RerankerSettings.rerank_weight
PAD_COLOR = (128, 128, 128)  # 0.5 grey, as the original OWL-ViT / OWLv2 pre-processing pads

ImageLike = Union[DecodedImage, Image.Image]


@dataclass(frozen=True)
class Architecture:
    model_cls: type
    processor_cls: type
    pad_query: bool  # whether the query image of image-guided detection is padded to a square


ARCHITECTURES = {
    'owlvit': Architecture(OwlViTForObjectDetection, OwlViTProcessor, pad_query=False),
    'owlv2': Architecture(Owlv2ForObjectDetection, Owlv2Processor, pad_query=True),
}


class Detection(NamedTuple):
    score: float  # probability that the query is in the image, 0..1
    box: List[float]  # [x1, y1, x2, y2] in original pixels, inside the image


def check_weight(weight) -> float:
    return spec_of(RerankerSettings, 'rerank_weight').parse('rerank_weight', weight)


# Below this detection score the detected box is no evidence of the query (loupe.config says why).
MIN_DETECTION_SCORE = RerankerSettings.min_detection_score


def box_is_evidence(detection: 'Detection', threshold: float = MIN_DETECTION_SCORE) -> bool:
    """Whether a detection's box should replace the first stage's highlight."""
    x1, y1, x2, y2 = detection.box
    return detection.score >= threshold and x2 > x1 and y2 > y1


def combine_scores(first_stage: float, detection: float, weight: float) -> float:
    """The score a reranked result is ranked by (see the module docstring)."""
    return (1.0 - weight) * first_stage + weight * detection


def rerank_matches(matches: Sequence[Match], top_k: int,
                   detect: Callable[[List[Match]], List[Optional[Detection]]], weight: float,
                   min_detection_score: float = MIN_DETECTION_SCORE) -> List[Match]:
    """The rerank step, as the service and ``loupe eval`` both run it.

    ``detect`` finds the query in the images of the top ``top_k`` matches (None where an image
    cannot be had: that match keeps its score and box). A detected match's score becomes
    ``combine_scores``; its highlight becomes the detected box where ``box_is_evidence``; the
    head is re-sorted by score and the rest keep their order. The head's matches are changed in
    place.
    """
    head, tail = list(matches[:top_k]), list(matches[top_k:])
    for match, detection in zip(head, detect(head)):
        if detection is None:
            continue
        first_stage = match.scores.get(SCORE_CHUNK, match.score)
        match.score = combine_scores(first_stage, detection.score, weight)
        match.scores[SCORE_RERANK] = detection.score
        match.scores[SCORE_FINAL] = match.score
        if box_is_evidence(detection, min_detection_score):
            match.highlight_box = to_list(detection.box)
            match.highlight_source = SOURCE_RERANKER
    head.sort(key=lambda m: m.score, reverse=True)
    return head + tail


def as_decoded(image: ImageLike) -> DecodedImage:
    """A DecodedImage as is; a PIL image counts as the original (EXIF already applied by caller)."""
    if isinstance(image, DecodedImage):
        return image
    if isinstance(image, Image.Image):
        rgb = image if image.mode == 'RGB' else image.convert('RGB')
        return DecodedImage(image=rgb, width=rgb.width, height=rgb.height)
    raise TypeError(f'expected a DecodedImage or PIL image, got {type(image).__name__}')


class Reranker:
    """Text- and image-guided OWL detection, batched over candidate images."""

    def __init__(self, model: Optional[str] = None, device: str = 'auto', half: bool = False,
                 batch_size: int = 8):
        if int(batch_size) <= 0:
            raise ValueError(f'batch_size must be > 0, got {batch_size}')
        self.batch_size = int(batch_size)
        self.checkpoint = resolve_checkpoint(model, ENV_OWL_MODEL, DEFAULT_OWL_MODEL)
        config = from_pretrained(AutoConfig, self.checkpoint)
        self.arch = choose(ARCHITECTURES, config.model_type, 'OWL model type')
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(self.device, half)
        self.processor = from_pretrained(self.arch.processor_cls, self.checkpoint)
        self.model = from_pretrained(self.arch.model_cls, self.checkpoint, dtype=self.dtype)
        self.model.to(self.device).eval()
        self.input_size = config.vision_config.image_size
        self.max_text_length = config.text_config.max_position_embeddings
        resample = getattr(self.processor.image_processor, 'resample', None)
        self.resample = Image.Resampling(int(resample)) if resample is not None \
            else Image.Resampling.BICUBIC

    # -- queries -------------------------------------------------------------------------------

    @torch.inference_mode()
    def text_query(self, query: str) -> torch.Tensor:
        """The class-head query embedding of a text, shape (1, 1, D)."""
        if not query or not query.strip():
            raise InvalidRequestError('empty text query')
        tokens = self.processor.tokenizer(
            [query], padding='max_length', truncation=True, max_length=self.max_text_length,
            return_tensors='pt').to(self.device)
        features = self.model.base_model.get_text_features(
            input_ids=tokens['input_ids'], attention_mask=tokens['attention_mask'])
        return features.pooler_output[:, None, :]

    @torch.inference_mode()
    def image_query(self, query_image: ImageLike) -> torch.Tensor:
        """The class-head embedding of the query image's best box, shape (1, 1, D)."""
        image = as_decoded(query_image).image
        square = self._square(image)[0] if self.arch.pad_query else image.resize(
            (self.input_size, self.input_size), self.resample)
        feature_map = self.model.image_embedder(pixel_values=self._pixel_values([square]))[0]
        b, h, w, d = feature_map.shape
        feats = feature_map.reshape(b, h * w, d)
        embeds, _, boxes = self.model.embed_image_query(feats, feature_map)
        if embeds is None:
            # OWL-ViT found no box overlapping the frame (degenerate boxes): take the one whose
            # generalised IoU with the frame is highest.
            corners = center_to_corners_format(boxes[0]).float().cpu().numpy()
            best = int(generalized_iou([[0.0, 0.0, 1.0, 1.0]], corners)[0].argmax())
            embeds = self.model.class_predictor(feats)[1][:, best][:, None, :]
        return embeds

    # -- detection -----------------------------------------------------------------------------

    def detect_text(self, images: Sequence[ImageLike], query: str) -> List[Detection]:
        if not images:
            return []
        return self.detect(images, self.text_query(query))

    def detect_image(self, images: Sequence[ImageLike], query_image: ImageLike) -> List[Detection]:
        if not images:
            return []
        return self.detect(images, self.image_query(query_image))

    def detect(self, images: Sequence[ImageLike], query_embeds: torch.Tensor) -> List[Detection]:
        """Best detection of one query per image: one forward pass per ``batch_size`` images."""
        results = []
        for start in range(0, len(images), self.batch_size):
            results.extend(self._detect_batch(
                [as_decoded(im) for im in images[start:start + self.batch_size]], query_embeds))
        return results

    @torch.inference_mode()
    def _detect_batch(self, images: List[DecodedImage], query_embeds) -> List[Detection]:
        squares, factors = zip(*(self._square(im.image, im.width, im.height) for im in images))
        feature_map = self.model.image_embedder(pixel_values=self._pixel_values(squares))[0]
        b, h, w, d = feature_map.shape
        feats = feature_map.reshape(b, h * w, d)
        logits = self.model.class_predictor(feats, query_embeds)[0]  # (b, patches, 1)
        boxes = self.model.box_predictor(feats, feature_map).float().cpu()  # (b, patches, cxcywh)
        scores = logits[..., 0].float().sigmoid().cpu()
        # Boxes centred on the grey padding describe the padding: they do not compete, unless
        # no box of the image is centred inside it.
        scale = torch.tensor(factors, dtype=torch.float32)[:, None, :]  # (b, 1, [fx, fy])
        size = torch.tensor([[im.width, im.height] for im in images], dtype=torch.float32)
        inside = (boxes[..., :2] * scale < size[:, None, :]).all(dim=-1)
        inside |= ~inside.any(dim=1, keepdim=True)
        best_scores, best = scores.masked_fill(~inside, -1.0).max(dim=1)
        out = []
        for i, im in enumerate(images):
            cx, cy, bw, bh = boxes[i, best[i]].tolist()
            fx, fy = factors[i]
            box = as_boxes([(cx - bw / 2) * fx, (cy - bh / 2) * fy,
                            (cx + bw / 2) * fx, (cy + bh / 2) * fy])
            box = clip_to_image(box, im.width, im.height)[0]
            out.append(Detection(score=float(best_scores[i]), box=[float(v) for v in box]))
        return out

    def _square(self, image: Image.Image, width: Optional[int] = None,
                height: Optional[int] = None):
        """The model input (resized, padded bottom/right) and the factors that map a normalised
        box on it to pixels of an image of ``width`` x ``height`` (default: ``image``'s size)."""
        ratio = self.input_size / max(image.width, image.height)
        rw = min(self.input_size, max(1, round(image.width * ratio)))
        rh = min(self.input_size, max(1, round(image.height * ratio)))
        square = Image.new('RGB', (self.input_size, self.input_size), PAD_COLOR)
        square.paste(image.resize((rw, rh), self.resample), (0, 0))
        width, height = width or image.width, height or image.height
        return square, (self.input_size * width / rw, self.input_size * height / rh)

    def _pixel_values(self, squares) -> torch.Tensor:
        # Already the input size and square: the processor only rescales and normalises.
        pixel_values = self.processor.image_processor(
            images=list(squares), do_resize=False, do_center_crop=False, do_pad=False,
            return_tensors='pt')['pixel_values']
        return pixel_values.to(self.device, self.dtype)
