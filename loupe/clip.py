"""The encoder's former name, kept for code that imports it: see loupe.embedder."""
from loupe.embedder import Embedder as ClipEmbedder, check_batch_size, draft_min_side  # noqa: F401
