"""Caption retrieval with whole-image embeddings, the protocol of the CLIP paper's zero-shot table.

Text -> image: every caption is a query; a hit at k when its image is in the top k images.
Image -> text: every image is a query; a hit at k when any of its captions is in the top k
captions. Ties count against the query (a constant embedder scores 0, not 1).
Result: ``images``, ``captions``, ``text_to_image`` and ``image_to_text`` (k -> recall),
``failed``, ``seconds`` (embed, score).
"""
import time
from typing import List, Sequence

import numpy as np
from tqdm import tqdm

from loupe.errors import ImageLoadError
from loupe.evaluation.datasets import CaptionDataset
from loupe.evaluation.metrics import DEFAULT_KS, recall_at

_ROWS = 1024  # similarity rows computed at a time (COCO 5k: 25k captions x 5k images)


def evaluate_captions(dataset: CaptionDataset, embedder, ks: Sequence[int] = DEFAULT_KS,
                      progress: bool = False) -> dict:
    started = time.perf_counter()
    kept: List[int] = []
    failed: List[str] = []

    def images():
        for i, item in enumerate(tqdm(dataset.images, desc='images', unit='img',
                                      disable=not progress, leave=False)):
            try:
                decoded = embedder.decode(item.path.read_bytes())
            except (ImageLoadError, OSError) as e:
                failed.append(f'{item.path}: {e}')
                continue
            kept.append(i)
            yield decoded.image

    image_vectors = np.asarray(embedder.embed_images(images()), dtype=np.float32)
    texts, owner = [], []
    for row, i in enumerate(kept):
        texts += dataset.images[i].captions
        owner += [row] * len(dataset.images[i].captions)
    text_vectors = np.asarray(embedder.embed_texts(texts), dtype=np.float32)
    embedded = time.perf_counter()
    owner = np.asarray(owner, dtype=np.int64)
    return {'evaluation': 'captions', 'dataset': dataset.describe(), 'ks': list(ks),
            'images': len(kept), 'captions': len(texts),
            'text_to_image': recall_at(text_to_image_ranks(text_vectors, image_vectors, owner), ks),
            'image_to_text': recall_at(image_to_text_ranks(image_vectors, text_vectors, owner), ks),
            'failed': failed,
            'seconds': {'embed': round(embedded - started, 3),
                        'score': round(time.perf_counter() - embedded, 3)}}


def text_to_image_ranks(texts: np.ndarray, images: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """1-based rank of each caption's own image among all images."""
    ranks = []
    for start in range(0, len(texts), _ROWS):
        sims = texts[start:start + _ROWS] @ images.T
        own = sims[np.arange(len(sims)), owner[start:start + _ROWS]]
        ranks.append((sims >= own[:, None]).sum(axis=1))  # itself included: rank 1 when alone
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


def image_to_text_ranks(images: np.ndarray, texts: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """1-based rank of each image's best own caption among its own and all other captions."""
    ranks = []
    for start in range(0, len(images), _ROWS):
        sims = images[start:start + _ROWS] @ texts.T
        mine = owner[None, :] == np.arange(start, start + len(sims))[:, None]
        best_own = np.where(mine, sims, -np.inf).max(axis=1)
        others = np.where(mine, -np.inf, sims)
        ranks.append((others >= best_own[:, None]).sum(axis=1) + 1)
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)
