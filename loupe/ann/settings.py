"""The chunk index's settings: defaults, which ones need a rebuild, and how persisted ones win."""
import logging
from typing import Optional

from loupe.models import choose

logger = logging.getLogger(__name__)

# Precision of the vectors inside the graph (the LMDB copy is always float16).
PRECISIONS = {'f32': 'f32', 'f16': 'f16', 'i8': 'i8'}
STRUCTURAL = ('precision', 'connectivity', 'expansion_add')  # changing these needs a rebuild
# expansion_search 256: recall@10 0.985 at 1M chunk vectors for ~0.8 ms a query (bench/ann.py);
# 64 recalled only 0.87 there.
DEFAULTS = {'precision': 'f16', 'connectivity': 16, 'expansion_add': 128, 'expansion_search': 256}


def check_precision(precision: Optional[str]) -> None:
    if precision is not None:
        choose(PRECISIONS, precision, 'precision')


def resolve(stored: Optional[dict], given: dict, rebuild: bool, where) -> dict:
    """The settings an index opens with: ``DEFAULTS`` < persisted < given.

    Persisted structural settings win over given ones unless ``rebuild`` (the graph was built
    with them); ``expansion_search`` only affects queries, so a given value always applies.
    """
    settings = {**DEFAULTS, **(stored or {})}
    if stored and not rebuild:
        changed = [name for name in STRUCTURAL
                   if given.get(name) is not None and given[name] != stored[name]]
        if changed:
            logger.warning(
                'index at %s keeps its persisted %s; open it with rebuild=True to apply %s',
                where, {n: stored[n] for n in changed}, {n: given[n] for n in changed})
    settings.update({n: v for n, v in given.items()
                     if v is not None and (n == 'expansion_search' or not stored or rebuild)})
    return settings
