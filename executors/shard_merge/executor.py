"""Merges the answers of a stateful executor's shards (``uses_after`` with ``no_reduce: true``).

Jina's default reduce would concatenate the shards' answers (and cannot merge ``chunk_hits``,
one bytes field per query) and could not report a shard that did not answer;
``loupe.shard_merge`` gives what one unsharded executor gives, and says which shards are
missing.

One default handler, no named endpoints: the head of a sharded executor announces the merger's
endpoints beside the shards' but only the shards' document schemas, so a named endpoint the
shards do not name stops the gateway at start-up. Each shard's stamp says which endpoint it
answered.
"""
from typing import List, Optional

from docarray import DocList
from jina import Executor, requests

from loupe.schema import ImageDoc
from loupe.shard_merge import merge_shards


class ShardMerge(Executor):
    @requests
    def merge(self, docs: DocList[ImageDoc],
              docs_matrix: Optional[List[DocList[ImageDoc]]] = None,
              **kwargs) -> DocList[ImageDoc]:
        if not docs_matrix:
            return docs
        merged = merge_shards(docs_matrix)
        for doc in merged:
            if doc.warning:
                self.logger.warning(f'{doc.id}: {doc.warning}')
        return merged
