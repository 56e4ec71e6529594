"""Names shared by executors, client and CLI: chunk kinds, score stages, statuses, settings."""

# Chunk kinds: which partition method produced a chunk.
KIND_WHOLE = 'whole'
KIND_GRID = 'grid'
KIND_DETECTOR = 'detector'
KIND_DINO = 'dino'

# Keys of ``Match.scores``: one score per stage that scored the result.
SCORE_CHUNK = 'chunk'  # first stage: aggregated cosine similarity of chunk matches
SCORE_RERANK = 'rerank'  # OWL-ViT detection score of the query in the image
SCORE_FINAL = 'final'  # what the result is ranked by

# ``Match.highlight_source``: which stage produced the highlight box.
SOURCE_CHUNK = 'chunk'
SOURCE_RERANKER = 'reranker'

# ``ImageDoc.status`` after an /index request.
STATUS_INDEXED = 'indexed'
STATUS_ERROR = 'error'
STATUS_DELETED = 'deleted'
STATUS_MISSING = 'missing'  # /exists: not (fully) indexed, so index it again

# Endpoints the flows serve.
ENDPOINTS = ('/index', '/search', '/delete', '/exists', '/find', '/update', '/recommend',
             '/duplicates', '/map')

DEFAULT_PORT = 54000  # gRPC of `loupe serve`; HTTP on the next port

# Environment settings.
ENV_WORKSPACE = 'LOUPE_WORKSPACE'
ENV_FLOWS = 'LOUPE_FLOWS'  # folder of the flow YAMLs
ENV_FAST_CODEC = 'LOUPE_FAST_CODEC'  # 0: docarray's own protobuf codec (loupe.wire)
ENV_SERVER = 'LOUPE_SERVER'  # host:port of a running service for the CLI
ENV_CLIP_MODEL = 'LOUPE_CLIP_MODEL'
ENV_OWL_MODEL = 'LOUPE_OWL_MODEL'
ENV_DETECTOR_MODEL = 'LOUPE_DETECTOR_MODEL'
ENV_DINO_MODEL = 'LOUPE_DINO_MODEL'

# Encoder precisions (loupe.precision).
PRECISIONS = ('fp32', 'fp16', 'bf16', 'int8')
BACKENDS = ('torch', 'onnx')  # where the encoder runs its image tower

DEFAULT_CLIP_MODEL = 'openai/clip-vit-base-patch32'
DEFAULT_OWL_MODEL = 'google/owlvit-base-patch32'
DEFAULT_DETECTOR_MODEL = 'ustc-community/dfine-nano-coco'
DEFAULT_DINO_MODEL = 'facebook/dino-vits16'

IMAGE_EXTENSIONS = frozenset(
    {'.jpg', '.jpeg', '.png', '.webp', '.bmp', '.gif', '.tif', '.tiff', '.heic', '.heif',
     '.avif'})
