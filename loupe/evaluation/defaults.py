"""Defaults shared by the evaluations and ``loupe eval``, light enough for the CLI to import."""
from loupe.config import RerankerSettings

DEFAULT_METHODS = 'none,grid'
DEFAULT_PROMPT = 'a photo of a {}'  # the CLIP paper's basic prompt; {} is the class name
DEFAULT_MIN_SIDE = 32  # pixels: smaller objects make poor example queries (COCO's "small")
DEFAULT_RERANK_TOP = RerankerSettings.rerank_top_k  # as the service reranks
DEFAULT_CAPTIONS_PER_IMAGE = 5  # the CLIP paper's protocol
