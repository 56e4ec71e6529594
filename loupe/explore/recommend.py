"""More like this: rank images from yes/no votes on some of them (relevance feedback).

- Likes and dislikes: an SVM with an RBF kernel (scikit-learn ``SVC``, balanced class weights)
  trained on the voted images' whole-image vectors; images rank by its decision value. An SVM
  does well with a handful of examples, and its margin says which images are uncertain.
- Likes only, fewer than ``SVM_MIN_LIKES``: cosine similarity to the normalised mean of the
  liked vectors. With so few positives an SVM against sampled negatives mostly learns the
  sample; the mean direction is as good and needs no randomness.
- Likes only, ``SVM_MIN_LIKES`` or more: the SVM, with ``NEGATIVES_PER_LIKE`` times as many
  images sampled (seeded by the votes, so a request is repeatable) from the unvoted ones as
  negatives: with several likes the boundary can follow their spread where a mean cannot.

``ask`` lists images whose vote would teach the model most, as active learning does: the
least certain (decision value nearest 0; for the similarity rule, nearest the midpoint between
the best and the median candidate) alternated with the top-ranked ones, so a person sees
likely positives and likely negatives. Voted images are never returned.
"""
import hashlib
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

SVM_MIN_LIKES = 5
NEGATIVES_PER_LIKE = 10
MIN_NEGATIVES = 50
SIMILARITY, SVM = 'similarity', 'svm'


@dataclass
class Ranking:
    ids: List[str]  # best first, at most ``limit``
    scores: List[float]
    ask: List[str] = field(default_factory=list)
    ask_scores: List[float] = field(default_factory=list)
    model: str = SIMILARITY


def _seed(liked: Sequence[str], disliked: Sequence[str]) -> int:
    key = ','.join(sorted(liked)) + '|' + ','.join(sorted(disliked))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], 'little')


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def liked_direction(liked_vectors: np.ndarray) -> np.ndarray:
    """The normalised mean of the liked vectors: what a candidate search starts from."""
    return normalise(normalise(liked_vectors).mean(axis=0))


def uses_svm(n_likes: int, n_dislikes: int) -> bool:
    return n_dislikes > 0 or n_likes >= SVM_MIN_LIKES


def scorer(liked: np.ndarray, disliked: np.ndarray, negatives: Optional[np.ndarray] = None):
    """A function vectors -> scores (higher = more like the likes), and the model's name.

    ``negatives``: unvoted images to use as negatives when there are no dislikes (see module).
    """
    liked, disliked = normalise(liked), normalise(disliked)
    if not uses_svm(len(liked), len(disliked)) or (not len(disliked) and negatives is None):
        direction = liked_direction(liked)
        return (lambda vectors: normalise(vectors) @ direction), SIMILARITY
    from sklearn.svm import SVC

    negative = disliked if len(disliked) else normalise(negatives)
    x = np.concatenate([liked, negative])
    y = np.concatenate([np.ones(len(liked)), np.zeros(len(negative))])
    model = SVC(kernel='rbf', class_weight='balanced', gamma='scale').fit(x, y)
    return (lambda vectors: model.decision_function(normalise(vectors))), SVM


def recommend(ids: Sequence[str], vectors: np.ndarray, liked: Sequence[str],
              disliked: Sequence[str], limit: int = 10, ask: int = 4,
              liked_vectors: Optional[np.ndarray] = None,
              disliked_vectors: Optional[np.ndarray] = None,
              pool: Optional[np.ndarray] = None) -> Ranking:
    """Rank the candidates ``ids`` (rows of ``vectors``) by the votes.

    The voted images' vectors are taken from the candidates, or given (``liked_vectors``,
    ``disliked_vectors``) when the candidate set comes from a search and may lack them.
    Sampled negatives come from ``pool`` (vectors of unvoted images from the whole
    collection; candidates from a search are all near the likes), else the unvoted candidates.
    """
    ids = list(ids)
    vectors = np.asarray(vectors, dtype=np.float32)
    position = {id_: i for i, id_ in enumerate(ids)}
    voted = set(liked) | set(disliked)
    if liked_vectors is None:
        liked_vectors = vectors[[position[i] for i in liked]]
    if disliked_vectors is None:
        disliked_vectors = vectors[[position[i] for i in disliked]] if disliked else \
            np.zeros((0, vectors.shape[1]), np.float32)
    unvoted = np.array([i for i, id_ in enumerate(ids) if id_ not in voted], dtype=np.int64)
    negatives = None
    if not len(disliked) and uses_svm(len(liked), 0):
        rng = np.random.default_rng(_seed(liked, disliked))
        source = vectors[unvoted] if pool is None else np.asarray(pool, dtype=np.float32)
        count = min(len(source), max(MIN_NEGATIVES, NEGATIVES_PER_LIKE * len(liked)))
        if count:
            negatives = source[rng.choice(len(source), size=count, replace=False)]
    score, model = scorer(liked_vectors, disliked_vectors, negatives)
    if not len(unvoted):
        return Ranking([], [], model=model)
    scores = np.asarray(score(vectors[unvoted]), dtype=np.float64)
    order = np.argsort(-scores, kind='stable')
    top = order[:limit]
    ranking = Ranking([ids[unvoted[i]] for i in top], [float(scores[i]) for i in top],
                      model=model)
    if ask > 0:
        if model == SVM:
            boundary = 0.0
        else:
            boundary = (float(scores[order[0]]) + float(np.median(scores))) / 2
        uncertain = np.argsort(np.abs(scores - boundary), kind='stable')
        chosen: List[int] = []
        streams = [iter(uncertain.tolist()), iter(order.tolist())]
        turn = 0
        while len(chosen) < min(ask, len(unvoted)):
            for candidate in streams[turn % 2]:
                if candidate not in chosen:
                    chosen.append(candidate)
                    break
            turn += 1
        ranking.ask = [ids[unvoted[i]] for i in chosen]
        ranking.ask_scores = [float(scores[i]) for i in chosen]
    return ranking
