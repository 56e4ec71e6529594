"""Merges the answers of a stateful executor's shards (``uses_after`` with ``no_reduce: true``).

Jina's default reduce would concatenate the shards' matches unsorted and uncut and could not
report a shard that did not answer; ``loupe.shard_merge`` gives what one unsharded executor
gives, and says which shards are missing.
"""
from typing import List, Optional

from docarray import DocList
from jina import Executor, requests

from loupe.schema import ImageDoc
from loupe.shard_merge import merge_shards

Matrix = Optional[List[DocList[ImageDoc]]]


class ShardMerge(Executor):
    # One handler per endpoint: Jina does not tell a handler which endpoint it serves.
    @requests(on='/search')
    def search(self, docs: DocList[ImageDoc], docs_matrix: Matrix = None,
               **kwargs) -> DocList[ImageDoc]:
        return self._merge('/search', docs, docs_matrix)

    @requests(on='/index')
    def index(self, docs: DocList[ImageDoc], docs_matrix: Matrix = None,
              **kwargs) -> DocList[ImageDoc]:
        return self._merge('/index', docs, docs_matrix)

    @requests(on='/exists')
    def exists(self, docs: DocList[ImageDoc], docs_matrix: Matrix = None,
               **kwargs) -> DocList[ImageDoc]:
        return self._merge('/exists', docs, docs_matrix)

    @requests(on='/delete')
    def delete(self, docs: DocList[ImageDoc], docs_matrix: Matrix = None,
               **kwargs) -> DocList[ImageDoc]:
        return self._merge('/delete', docs, docs_matrix)

    @requests(on='/find')
    def find(self, docs: DocList[ImageDoc], docs_matrix: Matrix = None,
             **kwargs) -> DocList[ImageDoc]:
        return self._merge('/find', docs, docs_matrix)

    @requests
    def other(self, docs: DocList[ImageDoc], docs_matrix: Matrix = None,
              **kwargs) -> DocList[ImageDoc]:
        return self._merge('', docs, docs_matrix)

    def _merge(self, endpoint: str, docs, docs_matrix: Matrix) -> DocList[ImageDoc]:
        if not docs_matrix:
            return docs
        merged = merge_shards(endpoint, docs_matrix)
        for doc in merged:
            if doc.warning:
                self.logger.warning(f'{endpoint} {doc.id}: {doc.warning}')
        return merged
