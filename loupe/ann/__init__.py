"""Persistent approximate-nearest-neighbour index of chunk embeddings (cosine similarity).

- ``index``: ``ChunkIndex``, the API (writes, searches, whole-image vectors, open and close);
- ``records``: the LMDB record codec (chunks, parents with their tags, meta values);
- ``graph``: the usearch graph file (load, atomic save, reconcile with the record);
- ``table``: what hits need, in memory arrays by key; ``ChunkHit`` / ``ChunkHits``;
- ``search``: search policy (filter and kind over-fetch, i8 re-scoring);
- ``settings``: defaults and persisted settings.
"""
from loupe.ann.graph import GRAPH_FILE
from loupe.ann.index import ChunkIndex
from loupe.ann.settings import DEFAULTS, PRECISIONS, STRUCTURAL
from loupe.ann.table import ChunkHit, ChunkHits

__all__ = ['ChunkIndex', 'ChunkHit', 'ChunkHits', 'DEFAULTS', 'PRECISIONS', 'STRUCTURAL',
           'GRAPH_FILE']
