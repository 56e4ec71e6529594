"""The explore endpoints on documents: checked parameters in, matches out.

The executors hand over their stores and the request; a client mistake becomes the request
document's ``error`` (the client raises it; the service goes on serving). The numeric work
(scikit-learn, scipy, usearch) is imported on first use: every process that loads the
executors (and the reranker's store readers) need not pay for it.
"""
from typing import Callable, Optional

from docarray import DocList

from loupe.errors import InvalidRequestError
from loupe.explore import params as P
from loupe.explore.groups import SEMANTIC
from loupe.images import decode, preview_jpeg
from loupe.schema import ImageDoc, Match
from loupe.store import ParentStore

MODEL_TAG = 'model'  # /recommend: which rule ranked (similarity or svm), in the doc's tags


def whole_vectors(chunk_index):
    """The chunk index's whole-image vectors, as explore reads them (cached between writes)."""
    from loupe.explore.vectors import ChunkIndexVectors

    return ChunkIndexVectors(chunk_index)


def _request(docs: Optional[DocList[ImageDoc]]) -> DocList[ImageDoc]:
    """The request's documents; one empty document when it sent none (the answer's carrier)."""
    return docs if docs else DocList[ImageDoc]([ImageDoc()])


def _guarded(docs: DocList[ImageDoc], work: Callable[[ImageDoc], None]) -> DocList[ImageDoc]:
    for doc in docs:
        if doc.error:
            continue
        try:
            work(doc)
        except InvalidRequestError as e:
            doc.error = str(e)
            doc.matches = DocList[Match]()
    return docs


def refuse_sharded(endpoint: str, docs, shard) -> DocList[ImageDoc]:
    """The request's documents, each failed and stamped by ``shard`` (``loupe.shard.Shard``):
    explore reads the whole collection's vectors and hashes at once (kNN over every image, all
    pairs, one projection), and with shards each process holds only a part of them."""
    docs = _request(docs)
    for doc in docs:
        if not doc.error:
            doc.error = (f'{endpoint} is not available on a workspace served with {shard.count} '
                         'shards (it reads the whole collection in one process): serve it '
                         'with one shard, after `loupe reshard --to 1` if need be')
            doc.matches = DocList[Match]()
    return shard.stamp(endpoint, docs)


def recommend(view, docs, parameters) -> DocList[ImageDoc]:
    def work(doc):
        from loupe.explore import service

        options = P.read('/recommend', parameters)
        options.pop('with_preview')  # root storage's part
        ranking = service.recommend(view, **options)
        matches = [Match(parent_id=i, score=s) for i, s in zip(ranking.ids, ranking.scores)]
        matches += [Match(parent_id=i, score=s, ask=True)
                    for i, s in zip(ranking.ask, ranking.ask_scores)]
        doc.matches = DocList[Match](matches)
        doc.tags = {**doc.tags, MODEL_TAG: ranking.model}

    return _guarded(_request(docs), work)


def semantic_edges(view, docs, parameters) -> DocList[ImageDoc]:
    """Edges for root storage to group: ``parent_id`` -- ``joined_to`` with their cosine."""
    def work(doc):
        from loupe.explore import service

        options = P.read('/duplicates', parameters)
        if options['method'] not in (SEMANTIC, P.ALL):
            return
        edges = service.semantic_edges(view, options['semantic_threshold'],
                                       options['neighbours'], options['filter'])
        doc.matches = DocList[Match](Match(parent_id=a, joined_to=b, score=s, joined_by=SEMANTIC)
                                     for a, b, s in edges)

    return _guarded(_request(docs), work)


def project(view, docs, parameters) -> DocList[ImageDoc]:
    def work(doc):
        from loupe.explore import service

        options = P.read('/map', parameters)
        result = service.project(view, options['sample'], options['seed'],
                                 options['projection'], options['filter'], doc.embedding)
        similarity = result.similarity if result.similarity is not None else [None] * len(result.ids)
        doc.matches = DocList[Match](
            Match(parent_id=i, position=[float(x), float(y)],
                  score=float(s) if s is not None else 0.0,
                  scores={'query': float(s)} if s is not None else {})
            for i, (x, y), s in zip(result.ids, result.xy.tolist(), similarity))
        doc.tags = {**doc.tags, 'total': result.total}

    return _guarded(_request(docs), work)


def thumbnails(docs, parameters) -> DocList[ImageDoc]:
    """The map's points (filled by root storage's search, with previews) get small JPEG
    thumbnails instead of the previews."""
    def work(doc):
        size = P.read('/map', parameters)['thumb_size']
        for match in doc.matches:
            if match.preview:
                match.preview = preview_jpeg(decode(match.preview, min_side=size), size, 80)

    return _guarded(_request(docs), work)


def duplicate_groups(store: ParentStore, docs, parameters) -> DocList[ImageDoc]:
    """Exact and perceptual pairs from the store, the indexer's semantic edges, grouped."""
    def work(doc):
        from loupe.explore import service

        options = P.read('/duplicates', parameters)
        methods = P.METHODS_OF[options['method']]
        records = [r for r in store.records()
                   if not options['filter'] or service.passes_filter(r.tags, options['filter'])]
        if not records:
            raise InvalidRequestError(service.EMPTY if not options['filter'] else
                                      '/duplicates: no image passes the filter')
        edges = [(m.parent_id, m.joined_to, m.score) for m in doc.matches if m.joined_to]
        items = [service.Item(r.id, r.uris, r.width, r.height, r.added, r.phash)
                 for r in records]
        groups = service.duplicate_groups(items, methods, options['perceptual_threshold'], edges)
        matches = []
        for number, group in enumerate(groups):
            for member in group.members:
                rec = records[member.index]
                matches.append(Match(
                    parent_id=rec.id, uri=rec.uri, uris=list(rec.uris), tags=rec.tags,
                    width=rec.width, height=rec.height, group=number,
                    score=1.0 if member.similarity is None else member.similarity,
                    joined_by=member.method,
                    joined_to=None if member.joined_to is None else records[member.joined_to].id))
        if options['with_preview']:
            previews = store.get_many([m.parent_id for m in matches], preview=True)
            for match in matches:
                match.preview = previews[match.parent_id].preview or None
        doc.matches = DocList[Match](matches)
        doc.tags = {**doc.tags, 'unhashed': sum(1 for r in records if not r.phash)}

    return _guarded(_request(docs), work)
