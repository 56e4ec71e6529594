"""Merges the answers of a stateful executor's shards (``uses_after`` with ``no_reduce: true``).

Jina's default reduce would concatenate the shards' answers (and cannot merge ``chunk_hits``,
one bytes field per query) and could not report a shard that did not answer;
``loupe.shard_merge`` gives what one unsharded executor gives, and says which shards are
missing.
"""
from typing import List, Optional

from docarray import DocList
from jina import Executor, requests

from loupe.schema import ImageDoc
from loupe.shard_merge import merge_shards

Matrix = Optional[List[DocList[ImageDoc]]]


def _handler(endpoint: str):
    """A handler of ``endpoint``: Jina does not tell a handler which endpoint it serves, and
    the merge depends on it."""
    def merge(self, docs: DocList[ImageDoc], docs_matrix: Matrix = None,
              **kwargs) -> DocList[ImageDoc]:
        return self.merge(endpoint, docs, docs_matrix)

    return requests(on=endpoint)(merge)


class ShardMerge(Executor):
    # Every endpoint of loupe.constants.ENDPOINTS (tests/test_shard.py checks).
    merge_index = _handler('/index')
    merge_search = _handler('/search')
    merge_delete = _handler('/delete')
    merge_exists = _handler('/exists')
    merge_find = _handler('/find')
    merge_update = _handler('/update')
    merge_recommend = _handler('/recommend')
    merge_duplicates = _handler('/duplicates')
    merge_map = _handler('/map')

    @requests
    def other(self, docs: DocList[ImageDoc], docs_matrix: Matrix = None,
              **kwargs) -> DocList[ImageDoc]:
        return self.merge('', docs, docs_matrix)

    def merge(self, endpoint: str, docs, docs_matrix: Matrix) -> DocList[ImageDoc]:
        if not docs_matrix:
            return docs
        merged = merge_shards(endpoint, docs_matrix)
        for doc in merged:
            if doc.warning:
                self.logger.warning(f'{endpoint} {doc.id}: {doc.warning}')
        return merged
