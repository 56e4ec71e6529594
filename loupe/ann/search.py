"""Search policy over the graph: filter and kind over-fetch, and re-scoring of coarse graphs.

- A tag ``filter`` or a ``kinds`` restriction asks the graph for 4x more candidates, then 4x
  more each round, until ``k`` pass or the whole index was fetched; a round that asks for the
  whole index is an exact (brute-force) search, so a rare tag value never misses a chunk.
- ``i8`` graphs' quantised distances are too coarse to rank close neighbours (recall@10
  0.75-0.95 on clustered data, 0.99 re-scored): 4k candidates are re-scored with the float16
  vectors from LMDB.
"""
from typing import Callable, Dict, List, Optional

import numpy as np

from loupe.ann.graph import Graph
from loupe.ann.table import ChunkHits, HitTable

FILTER_GROWTH = 4
RESCORE = {'i8': 4}  # over-fetch factor of graphs re-scored from the float16 records


def accepts(tags: dict, filter: dict) -> bool:
    """Every filter tag must be present with an accepted value (a list lists several).

    A list-valued tag passes when any of its values is accepted.
    """
    for name, wanted in filter.items():
        if name not in tags:
            return False
        accepted = wanted if isinstance(wanted, (list, tuple, set, frozenset)) else (wanted,)
        have = tags[name] if isinstance(tags[name], list) else (tags[name],)
        if not any(value in accepted for value in have):
            return False
    return True


def search(graph: Graph, table: HitTable, queries: np.ndarray, k: int, precision: str,
           filter: Optional[dict] = None, kinds: Optional[frozenset] = None,
           kind_share: float = 1.0, tags: Optional[Callable[[str], dict]] = None,
           vectors: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> List[ChunkHits]:
    """Top ``k`` hits per unit query row (a zero row gets none).

    ``kind_share``: the share of chunks that are of ``kinds`` (the first round fetches enough
    to find ``k`` of them); ``tags(parent_id)`` reads a parent's tags (for ``filter``);
    ``vectors(keys)`` the float16 record vectors (for re-scoring).
    """
    size = len(graph)
    results: List[Optional[ChunkHits]] = [None] * len(queries)
    pending = np.flatnonzero(np.einsum('ij,ij->i', queries, queries) > 0).tolist()
    rescore = RESCORE.get(precision, 1)
    wanted = k * rescore
    fetch = wanted
    if kinds is not None:
        fetch = int(np.ceil(1.5 * wanted / max(kind_share, 1e-6)))
    if filter:
        fetch *= FILTER_GROWTH
    kind_codes = (np.asarray([c for c, v in enumerate(table.kinds.values) if v in kinds])
                  if kinds is not None else None)
    plain = kinds is None and not filter and rescore == 1
    verdicts: Dict[int, bool] = {}  # parent slot -> passes the filter
    while pending and size:
        count = min(fetch, size)
        exhaustive = count >= size  # asked for everything: exact, never a missed chunk
        keys, distances, counts = graph.search(queries[pending], count, exact=exhaustive)
        still = []
        for j, row in enumerate(pending):
            rows = table.rows(keys[j, :counts[j]])
            if plain:
                passed = np.flatnonzero(rows >= 0)
                if len(passed) == len(rows):  # the usual case: every key is in the table
                    passed = None
            else:
                keep = rows >= 0  # a key the table lacks was deleted by a write not yet applied
                if kind_codes is not None:
                    keep &= np.isin(table.kind_codes(np.maximum(rows, 0)), kind_codes)
                if filter:
                    slots = table.parent_slots(np.maximum(rows, 0))
                    for i in np.flatnonzero(keep).tolist():
                        slot = int(slots[i])
                        if slot not in verdicts:
                            verdicts[slot] = accepts(tags(table.parent_id(slot)), filter)
                        keep[i] = verdicts[slot]
                passed = np.flatnonzero(keep)
            if passed is None:
                picked = slice(0, k)
                found = len(rows)
            else:
                picked = passed[:wanted]
                found = len(passed)
            if rescore > 1:
                sims = (vectors(keys[j, picked]) @ queries[row] if len(picked)
                        else np.zeros(0, np.float32))
                order = np.argsort(-sims, kind='stable')[:k]
                picked, sims = picked[order], sims[order]
            else:
                if passed is not None:
                    picked = picked[:k]
                sims = 1.0 - distances[j, picked]
            np.minimum(sims, 1.0, out=sims)
            np.maximum(sims, -1.0, out=sims)
            results[row] = table.hits(rows[picked], sims)
            if found < wanted and count < size:
                still.append(row)
        pending = still
        fetch *= FILTER_GROWTH
    return [ChunkHits.empty() if r is None else r for r in results]
