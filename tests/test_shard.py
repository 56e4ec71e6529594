"""Shards without a flow: ownership, merging the shards' answers, the recorded layout, reshard."""
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from docarray import DocList

from loupe.ann import ChunkHits, ChunkIndex
from loupe.constants import STATUS_ERROR, STATUS_INDEXED, STATUS_MISSING
from loupe.errors import LoupeError
from loupe.paths import STORAGE_NAME, STORE_DIR
from loupe.reshard import reshard
from loupe.scaling import POLL_ALL, check_workspace, scale_config, workspace_shards
from loupe.schema import ImageDoc, Match
from loupe.shard import Shard, ShardCountError, readonly_store, shard_folder, shard_of
from loupe.shard_merge import merge_shards
from loupe.status import workspace_status
from loupe.store import ParentStore, StoredImage

IDS = [f'{i:032x}' for i in range(3000)]


def test_every_image_has_one_owner_the_same_in_every_process():
    owners = [shard_of(i, 3) for i in IDS]
    counts = Counter(owners)
    assert set(counts) == {0, 1, 2}
    assert all(850 <= n <= 1150 for n in counts.values()), counts  # a fair spread
    script = ('import sys; from loupe.shard import shard_of; '
              'print(",".join(str(shard_of(i, 3)) for i in sys.argv[1:]))')
    other = subprocess.run([sys.executable, '-c', script, *IDS[:200]], capture_output=True,
                           text=True, check=True).stdout.strip().split(',')
    assert [int(o) for o in other] == owners[:200]
    assert {shard_of(i, 1) for i in IDS} == {0}


def _chunks(rng, n, ndim=16):
    return [SimpleNamespace(box=[0, 0, 10 + k, 10], kind='grid', label=None,
                            embedding=rng.normal(size=ndim).astype(np.float32))
            for k in range(n)]


@pytest.fixture(scope='module')
def indexes(tmp_path_factory):
    """One unsharded index and the same images over three shards, by owner."""
    rng = np.random.default_rng(3)
    root = tmp_path_factory.mktemp('indexes')
    whole = ChunkIndex(root / 'whole')
    shards = [ChunkIndex(root / f'shard-{k}') for k in range(3)]
    items = [(IDS[i], _chunks(rng, 4), {'even': i % 2 == 0}) for i in range(400)]
    whole.upsert_many(items)
    for shard_id in range(3):
        shards[shard_id].upsert_many([it for it in items if shard_of(it[0], 3) == shard_id])
    yield whole, shards, rng.normal(size=(6, 16)).astype(np.float32)
    for index in [whole, *shards]:
        index.close()


def _answer(hits, shard_id, k):
    """A chunk indexer shard's answer: its hits as the one bytes field the ranker reads."""
    return ImageDoc(id='query', shard={'id': shard_id, 'of': 3, 'by': 'indexer', 'on': '/search',
                                           'k': k},
                    chunk_hits=hits.to_bytes())


def _hits(doc):
    return list(ChunkHits.from_bytes(doc.chunk_hits))


@pytest.mark.parametrize('flt', [None, {'even': True}])
def test_merged_shard_hits_equal_one_unsharded_index(indexes, flt):
    """Where the ANN is exact: each shard (~530 chunks) is searched whole for k = 600, and the
    unsharded index (1,600 chunks) whole for every chunk; the merge cuts the shards' 1,600
    hits to the top 600, which must be the unsharded top 600, scores and all."""
    whole, shards, queries = indexes
    k, everything = 600, len(whole)
    expected = whole.search(queries, everything, flt)
    per_shard = [shard.search(queries, k, flt) for shard in shards]
    for q in range(len(queries)):
        # The shards answer in any order; the merge does not depend on it.
        matrix = [DocList[ImageDoc]([_answer(per_shard[s][q], s, k)]) for s in (2, 0, 1)]
        (merged,) = merge_shards(matrix)
        got = _hits(merged)
        assert len(got) == min(k, len(expected[q]))
        assert got == list(expected[q][:k])  # ids, boxes, kinds, labels, similarities
        assert merged.shard is None and merged.warning is None


def test_a_search_without_a_shard_answers_from_the_others_and_says_so(indexes):
    whole, shards, queries = indexes
    per_shard = [shard.search(queries[:1], 20)[0] for shard in shards]
    matrix = [DocList[ImageDoc]([_answer(per_shard[s], s, 20)]) for s in (0, 2)]
    (merged,) = merge_shards(matrix)
    hits = _hits(merged)
    assert len(hits) == 20 and all(shard_of(h.parent_id, 3) != 1 for h in hits)
    assert 'shard 1 of 3 did not answer' in merged.warning


def _docs(ids, shard_id, endpoint, **fields):
    return DocList[ImageDoc]([ImageDoc(id=i, shard={'id': shard_id, 'of': 3, 'by': 'storage',
                                                    'on': endpoint},
                                       **fields) for i in ids])


def test_each_image_is_its_owners_answer_and_a_missing_owner_fails_it():
    ids = IDS[:30]
    answers = {s: _docs(ids, s, '/index') for s in (0, 2)}  # shard 1 is down
    for s, docs in answers.items():
        for doc in docs:
            if shard_of(doc.id, 3) == s:
                doc.status = STATUS_INDEXED
    merged = merge_shards(list(answers.values()))
    assert [d.id for d in merged] == ids
    for doc in merged:
        if shard_of(doc.id, 3) == 1:
            assert doc.status == STATUS_ERROR
            assert 'shard 1 of 3' in doc.error and 'not indexed' in doc.error
        else:
            assert doc.status == STATUS_INDEXED and not doc.error
    exists = merge_shards(list(_docs(ids, s, '/exists') for s in (0, 2)))
    assert {d.id for d in exists if d.status == STATUS_MISSING} == {
        i for i in ids if shard_of(i, 3) == 1}


def test_results_are_filled_by_their_owner_in_the_order_they_came():
    ranked = IDS[:12]
    missing = ranked[4]  # its owner no longer has it: dropped, as unsharded storage does
    matrix = []
    for s in range(3):
        doc = ImageDoc(id='q', shard={'id': s, 'of': 3, 'by': 'storage', 'on': '/search'})
        doc.matches = DocList[Match](
            [Match(parent_id=p, uri=f'{p}.jpg' if shard_of(p, 3) == s else None)
             for p in ranked if not (p == missing and shard_of(p, 3) == s)])
        matrix.append(DocList[ImageDoc]([doc]))
    (merged,) = merge_shards(matrix[::-1])
    assert [m.parent_id for m in merged.matches] == [p for p in ranked if p != missing]
    assert all(m.uri == f'{m.parent_id}.jpg' for m in merged.matches)


def test_a_folder_keeps_its_shard_count(tmp_path):
    base = tmp_path / 'ChunkIndexer'
    assert shard_folder(base, 1, 3) == base / 'shard-1'
    assert shard_folder(base, 2, 3) == base / 'shard-2'
    with pytest.raises(ShardCountError,
                       match=r'made with 3 shards, opened with 2.*reshard --to 2'):
        shard_folder(base, 0, 2)
    legacy = tmp_path / 'ParentStorage'
    (legacy / 'images').mkdir(parents=True)  # data from before shards were recorded: one shard
    assert shard_folder(legacy, 0, 1) == legacy
    with pytest.raises(ShardCountError):
        shard_folder(legacy, 0, 3)


def test_scaled_flow_config():
    config = {'executors': [{'name': 'encoder', 'uses': '/x/executors/clip_encoder/config.yml'},
                            {'name': 'indexer', 'uses': '/x/executors/chunk_indexer/config.yml'},
                            {'name': 'ranker', 'uses': '/x/executors/ranker/config.yml'}]}
    scale_config(config, shards=3, replicas=2, gpu=True)
    encoder, indexer, ranker = config['executors']
    assert encoder['replicas'] == 2 and encoder['env'] == {'CUDA_VISIBLE_DEVICES': 'RR'}
    assert indexer['shards'] == 3 and indexer['polling'] == POLL_ALL and indexer['no_reduce']
    assert indexer['uses_after'] == '/x/executors/shard_merge/config.yml'
    assert 'replicas' not in indexer and 'shards' not in ranker and 'replicas' not in ranker


def _workspace(root, n_images, rng):
    """A one-shard workspace as the flows lay it out."""
    records, items = [], []
    for i in range(n_images):
        pid = IDS[i]
        records.append(StoredImage(id=pid, width=10 + i, height=20, content_hash=f'h{i}',
                                   preview=b'jpeg' + bytes([i % 256]), uri=f'{i}.jpg',
                                   tags={'n': i}))
        items.append((pid, _chunks(rng, 3), {'n': i}))
    store = ParentStore(shard_folder(root / STORAGE_NAME, 0, 1) / STORE_DIR)
    store.put(records)
    store.close()
    with ChunkIndex(shard_folder(root / 'ChunkIndexer', 0, 1) / 'chunks') as index:
        index.upsert_many(items)
    return records


def _search_all(root, shards, queries, k=400):
    """The top ``k`` parents of each query; k over the index size (360 chunks): exact search."""
    folders = [root / 'ChunkIndexer'] if shards == 1 else [
        root / 'ChunkIndexer' / f'shard-{s}' for s in range(shards)]
    answers = []
    for s, folder in enumerate(folders):
        with ChunkIndex(folder / 'chunks') as index:
            answers.append(index.search(queries, k))
    if shards == 1:
        return [[h.parent_id for h in hits][:30] for hits in answers[0]]
    out = []
    for q in range(len(queries)):
        matrix = [DocList[ImageDoc]([_answer(answers[s][q], s, k)]) for s in range(shards)]
        for doc in matrix:
            doc[0].shard['of'] = shards
        out.append([h.parent_id for h in _hits(merge_shards(matrix)[0])][:30])
    return out


def test_reshard_moves_each_image_to_its_owner_without_re_encoding(tmp_path):
    rng = np.random.default_rng(5)
    records = _workspace(tmp_path, 120, rng)
    queries = rng.normal(size=(4, 16)).astype(np.float32)
    before = _search_all(tmp_path, 1, queries)
    with pytest.raises(LoupeError, match='reshard --to 3'):
        check_workspace(3, tmp_path)

    assert reshard(tmp_path, 3) == {'ChunkIndexer': 120, STORAGE_NAME: 120}
    assert workspace_shards(tmp_path) == 3 and check_workspace(None, tmp_path) == 3
    for s in range(3):
        store = ParentStore(tmp_path / STORAGE_NAME / f'shard-{s}' / STORE_DIR)
        with ChunkIndex(tmp_path / 'ChunkIndexer' / f'shard-{s}' / 'chunks') as index:
            owned = {r.id for r in records if shard_of(r.id, 3) == s}
            assert {r.id for r in store.records()} == owned
            assert index.known_parents(r.id for r in records) == owned
            assert len(index) == 3 * len(owned)
        store.close()
    assert _search_all(tmp_path, 3, queries) == before
    status = workspace_status(tmp_path)  # `loupe status` counts every shard's
    assert (status['images'], status['chunks']) == (120, 360)
    sharded = readonly_store(tmp_path / STORAGE_NAME / STORE_DIR)  # as the reranker reads it
    assert sharded.get_many([records[7].id])[records[7].id] == records[7]
    sharded.close()

    reshard(tmp_path, 1)
    assert workspace_shards(tmp_path) == 1
    assert _search_all(tmp_path, 1, queries) == before
    store = ParentStore(tmp_path / STORAGE_NAME / STORE_DIR)
    assert store.get_many([r.id for r in records]) == {r.id: r for r in records}
    store.close()


def test_shard_of_an_executor_from_jina_runtime_args():
    executor = SimpleNamespace(runtime_args=SimpleNamespace(shards=4, shard_id=2,
                                                            name='indexer/shard-2/rep-0'),
                               metas=SimpleNamespace(name='ChunkIndexer'))
    shard = Shard.of(executor)
    assert (shard.id, shard.count, shard.name) == (2, 4, 'indexer')
    docs = [ImageDoc(id=i) for i in IDS[:40]]
    assert [d.id for d in shard.mine(docs)] == [i for i in IDS[:40] if shard_of(i, 4) == 2]


def test_shards_in_a_flow_yaml_get_what_sharding_needs(tmp_path, monkeypatch):
    from pathlib import Path

    from loupe.flows import PROJECT_ROOT, scaled_config

    flow = tmp_path / 'flow.yml'
    flow.write_text(f"""jtype: Flow
executors:
  - name: encoder
    uses: {PROJECT_ROOT}/executors/clip_encoder/config.yml
    replicas: 2
  - name: indexer
    uses: {PROJECT_ROOT}/executors/chunk_indexer/config.yml
    shards: 2
""")
    monkeypatch.setenv('LOUPE_WORKSPACE', str(tmp_path / 'workspace'))
    encoder, indexer = scaled_config(str(flow))['executors']
    assert encoder['replicas'] == 2
    assert indexer['shards'] == 2 and indexer['polling'] == POLL_ALL and indexer['no_reduce']
    assert Path(indexer['uses_after']).is_file()
    shard_folder(tmp_path / 'workspace' / 'ChunkIndexer', 0, 3)  # a workspace made with 3
    with pytest.raises(LoupeError, match='made with 3 shards, opened with 2'):
        scaled_config(str(flow))
    assert scaled_config('serve')['executors'][2]['shards'] == 3  # the recorded count


def test_images_found_by_path_come_from_every_shard():
    matrix = []
    for s in (1, 0):
        doc = Shard(s, 3, 'storage').stamp('/find', [ImageDoc(id='q', uri='/photos')])[0]
        doc.matches = DocList[Match]([Match(parent_id=p) for p in IDS[:30]
                                      if shard_of(p, 3) == s])
        matrix.append(DocList[ImageDoc]([doc]))
    (merged,) = merge_shards(matrix)
    assert {m.parent_id for m in merged.matches} == {p for p in IDS[:30] if shard_of(p, 3) < 2}
    assert 'shard 2 of 3 did not answer' in merged.warning


def test_explore_on_shards_is_one_clear_refusal():
    from loupe.explore.endpoints import refuse_sharded

    query = ImageDoc(id='q')
    matrix = [refuse_sharded('/recommend', DocList[ImageDoc]([query.copy()]), Shard(s, 3, 'x'))
              for s in (2, 0)]  # shard 1 is down: the answer is the same
    (merged,) = merge_shards(matrix)
    assert merged.id == 'q' and not merged.matches and merged.shard is None
    assert merged.error.startswith('/recommend is not available on a workspace served with 3 '
                                   'shards') and 'loupe reshard --to 1' in merged.error
