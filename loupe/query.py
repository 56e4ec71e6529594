"""Query arithmetic: ``"a dog" + "on the beach" - night``, text and example images mixed.

A query is a list of weighted terms; the service embeds each with CLIP and searches with the
normalised weighted sum (loupe.embedder's embeddings are unit vectors, so ``-`` steers away from a
concept). A term is ``[WEIGHT*]TEXT`` or ``[WEIGHT*]IMAGE`` where IMAGE is an existing image
file, an http(s) URL of one, or ``image:PATH``.
"""
import re
from pathlib import Path
from typing import List, Sequence, Tuple, Union

from loupe.constants import IMAGE_EXTENSIONS
from loupe.errors import InvalidRequestError

TEXT, IMAGE = 'text', 'image'
Term = Tuple[float, str, Union[str, bytes]]  # (weight, TEXT or IMAGE, the text or the image)
MAX_TERMS = 16
_WEIGHT = re.compile(r'^\s*([-+]?\d+(?:\.\d*)?|[-+]?\.\d+)\s*\*\s*(.+)$', re.S)


def _is_image(value: str) -> bool:
    lowered = value.lower()
    if lowered.startswith(('http://', 'https://')):
        return Path(lowered.split('?')[0]).suffix in IMAGE_EXTENSIONS
    path = Path(value).expanduser()
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def term(sign: float, token: str) -> Term:
    weight, value = 1.0, token
    match = _WEIGHT.match(token)
    if match:
        weight, value = float(match.group(1)), match.group(2)
    value = value.strip()
    if value.startswith('image:'):
        return sign * weight, IMAGE, value[len('image:'):]
    if _is_image(value):
        return sign * weight, IMAGE, value
    if not value:
        raise InvalidRequestError(f'empty query term in {token!r}')
    return sign * weight, TEXT, value


def parse_terms(tokens: Sequence[str]) -> List[Term]:
    """Command-line words to terms: ``+`` and ``-`` separate terms, other words join up."""
    terms, sign, words = [], 1.0, []

    def flush():
        if words:
            terms.append(term(sign, ' '.join(words)))
            words.clear()

    for token in tokens:
        if token in ('+', '-'):
            if not words and not terms:
                if token == '-':
                    sign = -1.0
                continue
            flush()
            sign = 1.0 if token == '+' else -1.0
        else:
            words.append(token)
    if not words and terms:
        raise InvalidRequestError('the query ends with an operator: add a term after it')
    flush()
    return terms


def check_terms(terms: Sequence[Term]) -> None:
    if not terms:
        raise InvalidRequestError('empty query: give a text or an image')
    if len(terms) > MAX_TERMS:
        raise InvalidRequestError(f'at most {MAX_TERMS} query terms, got {len(terms)}')
    if not any(weight > 0 for weight, _, _ in terms):
        raise InvalidRequestError('a query needs at least one term with a positive weight')
    for weight, kind, value in terms:
        if kind not in (TEXT, IMAGE):
            raise InvalidRequestError(f'a query term is text or image, got {kind!r}')
        if kind == TEXT and not str(value).strip():
            raise InvalidRequestError('empty query: a text term is blank')


def combine(vectors, weights: Sequence[float]):
    """The unit vector along the weighted sum of unit ``vectors`` (float32)."""
    import numpy as np

    if len(vectors) != len(weights) or not len(vectors):
        raise InvalidRequestError('a composite query needs one weight per term')
    if not any(w > 0 for w in weights):
        raise InvalidRequestError('a query needs at least one term with a positive weight')
    stacked = np.stack([np.asarray(v, dtype=np.float32).ravel() for v in vectors])
    total = (np.asarray(weights, dtype=np.float32)[:, None] * stacked).sum(axis=0)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise InvalidRequestError('the query terms cancel out: nothing left to search for')
    return total / norm
