"""Merging the answers of a stateful executor's shards into the answer one unsharded executor
gives.

Every shard answers every document (``loupe.shard``), stamped with ``{id, of, by, on}`` (on: the endpoint); the shards
that answered are the stamps seen, so a shard that is down is noticed and said:

- ``/search`` on the chunk index: the shards' chunk hits (``chunk_hits``) together, best first,
  cut to the ``k`` each shard cut to. A shard's top k holds every chunk of the global top k that
  it owns, so this is exactly the unsharded top k (where each shard's ANN is exact).
- ``/search`` on the parent storage: a result is kept when its owner kept it (found and filled
  it), in the order it came in.
- ``/find`` (images by path): every shard's finds together.
- every other endpoint (``/update``, and the explore endpoints, which sharded executors refuse):
  each document is its owner's answer. When the owner did not answer, the
  image is reported failed on ``/index`` (never silently lost), ``missing`` on ``/exists`` (so a
  client sends it again, and learns then), and not deleted on ``/delete``.

A search that misses a shard still answers from the others, with ``ImageDoc.warning`` saying
which shards are missing: their images cannot be in the results.
"""
from typing import Dict, List, Sequence

from docarray import DocList

from loupe.constants import STATUS_MISSING
from loupe.documents import mark_error
from loupe.ann import ChunkHits
from loupe.schema import ImageDoc, Match
from loupe.shard import shard_of


def _stamp(doc) -> dict:
    return doc.shard or {}


def _missing_message(name: str, missing: Sequence[int], count: int) -> str:
    listed = ', '.join(str(k) for k in missing)
    return (f'{name}: shard{"s" * (len(missing) > 1)} {listed} of {count} did not answer; '
            f'the results come from the other shards only')


def _warn(doc: ImageDoc, message: str) -> None:
    doc.warning = f'{doc.warning}; {message}' if doc.warning else message


def merge_shards(docs_matrix: List[DocList[ImageDoc]]) -> DocList[ImageDoc]:
    """One answer from the answers of the shards that answered (``docs_matrix``, any order);
    the endpoint each answered is in its stamp."""
    rows = [list(row) for row in docs_matrix if row is not None]
    if not rows:
        return DocList[ImageDoc]()
    versions: Dict[str, Dict[int, ImageDoc]] = {}
    for row in rows:
        for doc in row:
            versions.setdefault(doc.id, {})[_stamp(doc).get('id', -1)] = doc
    merged = []
    for doc in rows[0]:
        by_shard = versions[doc.id]
        stamp = next((_stamp(d) for d in by_shard.values() if d.shard), None)
        if stamp is None:  # not from shards: nothing to merge
            merged.append(doc)
            continue
        count, name, endpoint = stamp['of'], stamp.get('by') or 'shards', stamp.get('on')
        if endpoint in ('/search', '/find'):
            out = (_merge_search(doc, by_shard, stamp, count) if endpoint == '/search'
                   else _merge_found(doc, by_shard))
            missing = [k for k in range(count) if k not in by_shard]
            if missing:
                _warn(out, _missing_message(name, missing, count))
        else:
            out = _merge_owned(endpoint, doc, by_shard, count, name)
        merged.append(out)
    for doc in merged:
        doc.shard = None
    return DocList[ImageDoc](merged)


def _merge_search(doc: ImageDoc, by_shard: Dict[int, ImageDoc], stamp: dict,
                  count: int) -> ImageDoc:
    answers = [by_shard[k] for k in sorted(by_shard)]
    out = answers[0]
    if 'k' in stamp:  # chunk hits: each shard has its own, best first
        parts = [ChunkHits.from_bytes(a.chunk_hits) for a in answers if a.chunk_hits is not None]
        out.chunk_hits = ChunkHits.best_of(parts, stamp['k']).to_bytes() if parts else None
        return out
    # Results filled by their owner: every shard passed the others' results on untouched.
    owned = {k: {m.parent_id: m for m in answer.matches} for k, answer in by_shard.items()}
    kept = []
    for match in out.matches:
        owner = shard_of(match.parent_id, count)
        if owner in owned and match.parent_id in owned[owner]:
            kept.append(owned[owner][match.parent_id])
    out.matches = DocList[Match](kept)
    return out


def _merge_found(doc: ImageDoc, by_shard: Dict[int, ImageDoc]) -> ImageDoc:
    found = {}
    for k in sorted(by_shard):
        for match in by_shard[k].matches:
            found.setdefault(match.parent_id, match)
    out = by_shard[min(by_shard)]
    out.matches = DocList[Match](list(found.values()))
    return out


def _merge_owned(endpoint: str, doc: ImageDoc, by_shard: Dict[int, ImageDoc], count: int,
                 name: str) -> ImageDoc:
    owner = shard_of(doc.id, count)
    if owner in by_shard:
        return by_shard[owner]
    out = next(iter(by_shard.values()))
    reason = f'{name}: shard {owner} of {count}, which owns this image, did not answer'
    if endpoint == '/index':
        mark_error(out, f'{reason}; not indexed')
    elif endpoint == '/exists':
        out.status = STATUS_MISSING
    elif endpoint == '/delete':
        out.status = None
        _warn(out, f'{reason}; not deleted')
    return out

