"""Chunk vector index (loupe.ann) and the ChunkIndexer executor."""
import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from docarray import DocList
from jina import Flow

from executors.chunk_indexer.executor import ChunkIndexer
from loupe.ann import ChunkHits, ChunkIndex
from loupe.constants import KIND_GRID, KIND_WHOLE
from loupe.errors import DimensionMismatchError, InvalidRequestError, StorageFullError
from loupe.schema import Chunk, ImageDoc

DIM = 64
ROOT = Path(__file__).resolve().parents[1]


def clustered(n: int, dim: int = DIM, clusters: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    points = centers[rng.integers(0, clusters, n)] + 0.5 * rng.normal(size=(n, dim))
    return points.astype(np.float32)


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def chunks_of(vectors, first: int = 0, kind: str = KIND_GRID):
    """One chunk per vector; the box's x1 is the chunk's global number, to identify hits."""
    return [Chunk(box=[float(first + i), 0.0, first + i + 1.0, 1.0], kind=kind, label=None,
                  embedding=v) for i, v in enumerate(vectors)]


def fill(index: ChunkIndex, vectors: np.ndarray, per_parent: int = 5, tags=None) -> None:
    """Parents p0, p1, ... with ``per_parent`` chunks each; tags(i) gives parent i's tags."""
    index.upsert_many(
        (f'p{start // per_parent}', chunks_of(vectors[start:start + per_parent], start),
         tags(start // per_parent) if tags else None)
        for start in range(0, len(vectors), per_parent))


def hits_of(doc: ImageDoc) -> ChunkHits:
    """What the indexer hands the ranker for one query."""
    return ChunkHits.from_bytes(doc.chunk_hits)


def chunk_numbers(hits) -> list:
    return [int(hit.box[0]) for hit in hits]


@pytest.fixture(scope='module')
def data():
    """2,000 indexed vectors and 50 queries from the same clusters."""
    points = clustered(2050)
    return points[:2000], points[2000:]


# -- plain code ---------------------------------------------------------------------------------

@pytest.mark.parametrize('precision', ['f32', 'f16', 'i8'])
def test_recall_against_exact_search(tmp_path, data, precision):
    vectors, queries = data
    with ChunkIndex(tmp_path, precision=precision) as index:
        fill(index, vectors)
        hits = index.search(queries, 10)
    exact = np.argsort(-unit(queries) @ unit(vectors).T, axis=1)[:, :10]
    recall = np.mean([len(set(chunk_numbers(h)) & set(e)) / 10 for h, e in zip(hits, exact)])
    assert recall >= 0.95, f'{precision}: recall@10 {recall:.3f}'


def test_similarity_is_cosine_for_f32(tmp_path, data):
    vectors, queries = data
    with ChunkIndex(tmp_path, precision='f32') as index:
        fill(index, vectors[:300])
        hits = index.search(queries * 3.0, 20)  # scale must not matter
    for query, query_hits in zip(unit(queries), hits):
        sims = [hit.similarity for hit in query_hits]
        expected = unit(vectors[chunk_numbers(query_hits)]) @ query
        np.testing.assert_allclose(sims, expected, atol=1e-5)
        assert sims == sorted(sims, reverse=True)
        assert all(-1.0 <= s <= 1.0 for s in sims)


def test_hits_carry_chunk_metadata(tmp_path):
    vector = unit(np.ones(DIM, np.float32))
    with ChunkIndex(tmp_path) as index:
        index.upsert('img', [Chunk(box=[1.5, 2.0, 30.0, 40.0], kind='detector', label='cat',
                                   embedding=vector)])
        [[hit]] = index.search(vector[None], 5)
    assert (hit.parent_id, hit.box, hit.kind, hit.label) == ('img', [1.5, 2.0, 30.0, 40.0],
                                                              'detector', 'cat')
    assert hit.similarity == pytest.approx(1.0, abs=1e-3)


def test_upsert_replaces_the_parents_chunks(tmp_path, data):
    vectors, _ = data
    with ChunkIndex(tmp_path) as index:
        fill(index, vectors[:100])
        index.upsert('p0', chunks_of(vectors[500:502], 500))
        index.upsert('p0', chunks_of(vectors[500:502], 500))  # same again: no duplicates
        assert len(index) == 97
        hits = index.search(np.concatenate([vectors[:5], vectors[500:502]]), 97)
        stats = index.stats()
    assert stats['chunks'] == 97 and stats['parents'] == 20
    for query_hits in hits:
        numbers = chunk_numbers(query_hits)
        assert len(numbers) == len(set(numbers)) == 97
        assert not set(numbers) & set(range(5)), 'old chunks of p0 are still found'
    assert [chunk_numbers(h)[0] for h in hits[5:]] == [500, 501]


def test_upsert_without_chunks_removes_the_parent(tmp_path, data):
    vectors, _ = data
    with ChunkIndex(tmp_path) as index:
        fill(index, vectors[:10])
        index.upsert('p1', [])
        assert len(index) == 5
        assert all(h.parent_id == 'p0' for h in index.search(vectors[5:10], 10)[0])


def test_delete_removes_chunks_from_results(tmp_path, data):
    vectors, _ = data
    with ChunkIndex(tmp_path) as index:
        fill(index, vectors[:100])
        assert index.delete(['p0', 'p3', 'nope']) == 10
        assert index.delete(['p0']) == 0
        assert len(index) == 90
        hits = index.search(vectors[:20], 100)
    assert not {h.parent_id for query_hits in hits for h in query_hits} & {'p0', 'p3'}


def test_long_parent_ids(tmp_path, data):
    vectors, _ = data
    parent_id = 'https://example.com/' + 'x' * 1000 + '.jpg'
    with ChunkIndex(tmp_path) as index:
        index.upsert(parent_id, chunks_of(vectors[:2]), {'a': 1})
        assert index.search(vectors[:1], 1, filter={'a': 1})[0][0].parent_id == parent_id
        assert index.delete([parent_id]) == 2


def test_results_survive_a_restart(tmp_path, data):
    vectors, queries = data
    with ChunkIndex(tmp_path, precision='f32', connectivity=8) as index:
        fill(index, vectors[:500])
        before = index.search(queries, 10)
    with ChunkIndex(tmp_path) as index:
        after = index.search(queries, 10)
        stats = index.stats()
    assert (stats['chunks'], stats['ndim'], stats['precision'], stats['connectivity']) == (
        500, DIM, 'f32', 8)
    assert [[(h.parent_id, h.box) for h in q] for q in after] == \
        [[(h.parent_id, h.box) for h in q] for q in before]


def test_unsaved_graph_is_recovered_from_lmdb(tmp_path, data):
    """A process that dies without saving the graph loses neither additions nor deletions."""
    vectors, _ = data
    np.save(tmp_path / 'vectors.npy', vectors[:30])
    script = textwrap.dedent(f'''
        import os, numpy as np
        from loupe.ann import ChunkIndex
        from loupe.schema import Chunk
        v = np.load({str(tmp_path / 'vectors.npy')!r})
        chunk = lambda i: Chunk(box=[float(i), 0, i + 1.0, 1], kind='grid', embedding=v[i])
        index = ChunkIndex({str(tmp_path / 'index')!r}, save_every=None)
        index.upsert('a', [chunk(i) for i in range(10)])
        index.upsert('b', [chunk(i) for i in range(10, 20)])
        index.save()
        index.delete(['a'])
        index.upsert('c', [chunk(i) for i in range(20, 30)])
        os._exit(0)  # no close(): the saved graph still has 'a' and lacks 'c'
    ''')
    # imports alone can take a minute on a loaded machine
    subprocess.run([sys.executable, '-c', script], cwd=ROOT, check=True, timeout=900)
    with ChunkIndex(tmp_path / 'index') as index:
        assert len(index) == 20
        hits = index.search(vectors[:30], 20)
    found = {h.parent_id for query_hits in hits for h in query_hits}
    assert found == {'b', 'c'}
    assert chunk_numbers(hits[25])[0] == 25


def test_two_writers_on_one_folder_lose_nothing(tmp_path, data):
    """Issue 7: another process writes into the folder of an open index. The open index sees
    those writes at its next search, and after a restart the graph holds every chunk: its own
    later write and save cannot hide writes it did not apply."""
    vectors, _ = data
    np.save(tmp_path / 'vectors.npy', vectors[:300])
    first = ChunkIndex(tmp_path / 'index', save_every=None)
    fill(first, vectors[:100])  # p0..p19
    script = textwrap.dedent(f'''
        import numpy as np
        from loupe.ann import ChunkIndex
        from loupe.schema import Chunk
        v = np.load({str(tmp_path / 'vectors.npy')!r})
        chunk = lambda i: Chunk(box=[float(i), 0, i + 1.0, 1], kind='grid', embedding=v[i])
        with ChunkIndex({str(tmp_path / 'index')!r}) as index:
            index.upsert_many((f'q{{i}}', [chunk(j) for j in range(200 + 5 * i, 205 + 5 * i)],
                               None) for i in range(20))
            index.delete(['p0'])
    ''')
    # imports alone can take a minute on a loaded machine
    subprocess.run([sys.executable, '-c', script], cwd=ROOT, check=True, timeout=900)
    first.upsert('p50', chunks_of(vectors[500:505], 500))
    live = first.search(vectors[[200, 502]], 1)
    assert [h[0].parent_id for h in live] == ['q0', 'p50']
    assert 'p0' not in {h.parent_id for h in first.search(vectors[:5], 50)[0]}
    assert first.known_parents(['p0', 'q3', 'p50']) == {'q3', 'p50'}
    first.close()  # saves the graph as this process sees it
    with ChunkIndex(tmp_path / 'index') as index:
        assert len(index) == 100 - 5 + 100 + 5 == len(index.graph)
        # k = the whole index: an exact search, so a chunk missing from the graph is told apart
        # from an approximate miss (HNSW may leave a node of a small graph unreached)
        found = index.search(vectors[200:300], len(index))
    assert [chunk_numbers(h)[0] for h in found] == list(range(200, 300))


def test_a_stale_graph_file_is_repaired_on_open(tmp_path, data):
    """The graph file misses writes made after it was saved, by whoever made them: the
    reopened index compares keys, not a write counter, and repairs it."""
    vectors, _ = data
    with ChunkIndex(tmp_path, save_every=None) as index:
        fill(index, vectors[:50])
    saved = (tmp_path / 'chunks.usearch').read_bytes()
    with ChunkIndex(tmp_path, save_every=None) as index:
        fill(index, vectors[:100])  # p0..p19: p0..p9 replaced, p10..p19 new
        index.delete(['p3'])
    (tmp_path / 'chunks.usearch').write_bytes(saved)  # as if the last save never happened
    with ChunkIndex(tmp_path) as index:
        assert len(index.graph) == len(index) == 95
        # k = the whole index: exact, so only a chunk missing from the repaired graph can fail
        # (HNSW on a graph with removals may leave a node unreached at k = 1)
        hits = index.search(vectors[:100], len(index))
    numbers = [chunk_numbers(h)[0] for h in hits]
    assert numbers[:15] == list(range(15)) and 15 not in numbers[15:20]
    assert numbers[20:] == list(range(20, 100))


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs, unmounted afterwards; skipped where it cannot be mounted."""
    if os.geteuid() != 0:
        pytest.skip('a full disk is simulated with a small tmpfs, which needs root')
    disk = tmp_path / 'disk'
    disk.mkdir()
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f'cannot mount a tmpfs: {mounted.stderr.strip()}')
    try:
        yield disk
    finally:
        subprocess.run(['umount', str(disk)], check=True)


def fill_disk(folder: Path) -> Path:
    """Write a file until the disk refuses another byte."""
    filler = folder / 'filler'
    with open(filler, 'wb', buffering=0) as f:
        for size in (1 << 16, 1 << 10, 1):
            try:
                while True:
                    f.write(b'x' * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    return filler


def test_full_disk_opens_searches_and_refuses_writes_whole(small_disk, data):
    """Issue 7: on a full disk the index opens (its graph save fails and is logged), searches,
    refuses each write with 'no space left' having stored nothing, and leaves no temporary
    file; once space is back, writes work and nothing was lost."""
    vectors, _ = data
    path = small_disk / 'index'
    with ChunkIndex(path) as index:
        fill(index, vectors[:200])
    (path / 'chunks.usearch').unlink()  # the next open must rebuild and save the graph
    filler = fill_disk(small_disk)
    with ChunkIndex(path) as index:  # the start-up save fails: not an error
        # The rebuilt graph holds every chunk and searches. HNSW is approximate: on these
        # clustered vectors a parallel build now and then leaves a point unreachable, so a
        # stored chunk must come back first for nearly every query, not for all.
        assert len(index.graph) == 200
        found = index.search(vectors[:200:7], 1)
        first = [chunk_numbers(h)[0] for h in found]
        assert sum(n == f for n, f in zip(range(0, 200, 7), first)) >= 0.9 * len(first)
        with pytest.raises(StorageFullError, match='no space left'):
            index.upsert_many([('new', chunks_of(vectors[300:305], 300), None),
                               ('p1', chunks_of(vectors[305:306], 305), None)])
        with pytest.raises(StorageFullError, match='no space left'):
            index.delete(['p2'])
        assert len(index) == 200 and not index.known_parents(['new'])
        assert any(h[0].parent_id == 'p1' for h in index.search(vectors[5:10], 1))  # kept
    assert not (path / 'chunks.tmp').exists() and not (path / 'chunks.usearch').exists()
    filler.unlink()
    with ChunkIndex(path) as index:
        assert len(index) == len(index.graph) == 200
        index.upsert('new', chunks_of(vectors[300:305], 300))
        assert index.search(vectors[302:303], len(index))[0][0].parent_id == 'new'  # exact
    assert (path / 'chunks.usearch').stat().st_size > 0


def test_executor_reports_a_full_disk_per_item(small_disk, data):
    vectors, _ = data
    indexer = ChunkIndexer(metas={'workspace': str(small_disk)})
    try:
        indexer.index(docs=index_docs(vectors[:8]), parameters={})
        filler = fill_disk(small_disk)
        docs = index_docs(vectors[8:24])
        docs.append(ImageDoc(id='failed-before', error='cannot decode'))
        indexer.index(docs=docs, parameters={})
        assert all('no space left' in d.error and d.status == 'error' for d in docs[:4])
        assert docs[4].error == 'cannot decode'
        result = indexer.search(docs=query_docs(vectors[[0, 5]]), parameters={})
        assert [hits_of(d)[0].parent_id for d in result] == ['img0', 'img1']
        filler.unlink()
    finally:
        indexer.close()


def test_hit_table_lookups_through_removals_compaction_and_late_keys():
    from loupe.ann.table import HitTable

    table = HitTable()
    keys = np.arange(3000, dtype=np.uint64)
    table.add(keys, [f'p{k // 3}' for k in range(3000)], [[k, 0, k + 1, 1] for k in range(3000)],
              ['grid'] * 3000, [None] * 3000)
    table.remove(keys[:2400])  # most rows dead: the table compacts
    table.add(np.asarray([5000], np.uint64), ['late'], [[1, 2, 3, 4]], ['whole'], ['cat'])
    # a lower key than the last one (another process's write, applied late)
    table.add(np.asarray([3500], np.uint64), ['p800'], [[7, 7, 8, 8]], ['whole'], [None])
    assert len(table) == 602
    assert table.keys().tolist() == list(range(2400, 3000)) + [3500, 5000]
    rows = table.rows(np.asarray([0, 2399, 2401, 5000, 7777, 3500], np.uint64))
    assert rows[[0, 1, 4]].tolist() == [-1, -1, -1] and (rows[[2, 3, 5]] >= 0).all()
    hits = table.hits(rows[[2, 3, 5]], np.asarray([0.5, 0.25, 0.125]))
    assert [(h.parent_id, h.box, h.kind, h.label, h.similarity) for h in hits] == [
        ('p800', [2401.0, 0.0, 2402.0, 1.0], 'grid', None, 0.5),
        ('late', [1.0, 2.0, 3.0, 4.0], 'whole', 'cat', 0.25),
        ('p800', [7.0, 7.0, 8.0, 8.0], 'whole', None, 0.125)]
    assert not table.has_parent('p0') and table.has_parent('late')
    assert table.first_of_kind('whole', ['late', 'p0', 'p800'])[0] == ['late', 'p800']
    assert table.kind_count({'whole'}) == 2 and table.kind_count({'grid'}) == 600


def test_hits_travel_as_one_compact_message():
    hits = ChunkHits.of(['a', 'b\n\u00e9' + 'x' * 600, 'a'],
                     np.asarray([[0, 0, 10, 10], [1.25, 2.5, 3, 4], [5, 5, 6, 6]], np.float64),
                     np.asarray([0.9, 0.5, -0.25], np.float32), ['whole', 'detector', 'grid'],
                     [None, 'cat', None])
    message = hits.to_bytes()
    back = ChunkHits.from_bytes(message)
    assert list(back) == list(hits) and back[1].label == 'cat' and back[1].box == [1.25, 2.5, 3, 4]
    assert len(message) < 1000
    assert list(ChunkHits.from_bytes(ChunkHits.empty().to_bytes())) == []


def test_dimension_mismatch_names_both_sizes_and_writes_nothing(tmp_path, data):
    vectors, _ = data
    with ChunkIndex(tmp_path) as index:
        fill(index, vectors[:20])
        wide = np.ones((3, 2 * DIM), np.float32)
        with pytest.raises(DimensionMismatchError) as err:
            index.upsert_many([('new', chunks_of(vectors[20:22]), None),
                               ('p0', chunks_of(wide), None)])
        message = str(err.value)
        assert str(DIM) in message and str(2 * DIM) in message and str(tmp_path) in message
        with pytest.raises(DimensionMismatchError, match=str(2 * DIM)):
            index.search(wide, 5)
        assert len(index) == 20
    with ChunkIndex(tmp_path) as index:
        assert index.stats()['ndim'] == DIM and len(index) == 20
        assert index.search(vectors[:1], 1)[0][0].parent_id == 'p0'


def test_map_grows_instead_of_failing(tmp_path, data):
    vectors, _ = data
    with ChunkIndex(tmp_path, map_size=64 << 10) as index:
        fill(index, vectors, per_parent=50)  # ~300 KiB of records in one transaction
        assert len(index) == len(vectors)
        assert index.search(vectors[1999:], len(index))[0][0].parent_id == 'p39'  # exact


def test_filter_by_tags(tmp_path, data):
    vectors, queries = data
    colors = ['red', 'green', 'blue']
    rare = 77  # the only parent tagged 'rare', far from most queries

    def tags(i):
        return {'color': colors[i % 3], 'year': 2000 + i % 5, 'labels': ['x', f'l{i}'],
                **({'rare': True} if i == rare else {})}

    with ChunkIndex(tmp_path) as index:
        fill(index, vectors, tags=tags)
        by_color = index.search(queries, 10, filter={'color': 'red'})
        by_list = index.search(queries, 10, filter={'color': ['green', 'blue'], 'year': 2001})
        by_rare = index.search(queries[:3], 10, filter={'rare': True})
        by_label = index.search(queries[:3], 10, filter={'labels': 'l12'})
        nothing = index.search(queries[:3], 10, filter={'color': 'purple'})
        missing_tag = index.search(queries[:3], 10, filter={'shape': 'round'})
    parent = lambda hit: int(hit.parent_id[1:])  # noqa: E731
    assert all(len(h) == 10 and all(parent(x) % 3 == 0 for x in h) for h in by_color)
    assert all(len(h) == 10 and all(parent(x) % 3 and parent(x) % 5 == 1 for x in h)
               for h in by_list)
    assert all({parent(x) for x in h} == {rare} and len(h) == 5 for h in by_rare)
    assert all({parent(x) for x in h} == {12} for h in by_label)
    assert nothing == missing_tag == [[], [], []]


def test_settings_persist_unless_rebuilt(tmp_path, data):
    vectors, queries = data
    with ChunkIndex(tmp_path, precision='f32') as index:
        fill(index, vectors[:200])
    with ChunkIndex(tmp_path, precision='i8', expansion_search=100) as index:
        assert (index.stats()['precision'], index.stats()['expansion_search']) == ('f32', 100)
    with ChunkIndex(tmp_path, precision='i8', rebuild=True) as index:
        assert index.stats()['precision'] == 'i8'
        assert len(index.search(queries[:1], 10)[0]) == 10
    with ChunkIndex(tmp_path) as index:
        assert index.stats()['precision'] == 'i8'


def test_unknown_precision_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError, match='f16.*f32.*i8'):
        ChunkIndex(tmp_path, precision='f64')


def test_empty_and_missing_input(tmp_path, data):
    vectors, queries = data
    with ChunkIndex(tmp_path) as index:
        assert index.search(queries[:2], 5) == [[], []]
        assert index.search(None, 5) == []
        assert index.search(np.zeros((0, DIM), np.float32), 5) == []
        assert index.upsert_many(None) == index.upsert_many([]) == 0
        assert index.delete(None) == index.delete([]) == 0
        fill(index, vectors[:10])
        assert index.search(np.zeros(DIM, np.float32), 5) == [[]]
        with pytest.raises(InvalidRequestError):
            index.search(queries[:1], 0)
        with pytest.raises(ValueError, match='no embedding'):
            index.upsert('x', [Chunk(box=[0, 0, 1, 1], kind=KIND_WHOLE)])
        assert len(index) == 10


def test_whole_image_vectors_and_their_nearest_neighbours(tmp_path, data):
    """Whole-image vectors of all or some images, and kNN among them only: grid chunks that
    are closer to the query never come back."""
    vectors, _ = data
    wholes = unit(vectors[:30])
    with ChunkIndex(tmp_path, precision='i8') as index:
        for i in range(30):
            # grid chunks: copies of *other* images' whole vectors, so they would win a plain search
            grid = chunks_of(np.stack([wholes[(i + 1) % 30], wholes[(i + 2) % 30]]), 100 * i)
            index.upsert(f'img{i}', grid[:1] + chunks_of(wholes[i:i + 1], kind=KIND_WHOLE)
                         + grid[1:])
        index.upsert('no-whole', chunks_of(vectors[40:42]))
        ids, matrix = index.whole_vectors()
        some_ids, some = index.whole_vectors(['img7', 'missing', 'no-whole', 'img3', 'img7'])
        hits = index.nearest_whole(wholes[[4, 9]] * 2.0, 3)
    assert sorted(ids) == sorted(f'img{i}' for i in range(30)) and matrix.dtype == np.float32
    np.testing.assert_allclose(matrix, wholes[[int(i[3:]) for i in ids]], atol=2e-3)
    assert some_ids == ['img7', 'img3']
    np.testing.assert_allclose(some, wholes[[7, 3]], atol=2e-3)
    exact = np.argsort(-wholes[[4, 9]] @ wholes.T, axis=1)[:, :3]
    assert [[h.parent_id for h in q] for q in hits] == [[f'img{j}' for j in e] for e in exact]
    assert all(h.kind == KIND_WHOLE for q in hits for h in q)
    assert hits[0][0].similarity == pytest.approx(1.0, abs=1e-2)


def test_whole_image_accessors_on_an_empty_index(tmp_path):
    with ChunkIndex(tmp_path) as index:
        ids, matrix = index.whole_vectors()
        assert ids == [] and matrix.shape[0] == 0
        assert index.nearest_whole(np.ones((1, DIM), np.float32), 5) == [[]]


# -- executor -----------------------------------------------------------------------------------

def image_doc(doc_id: str, vectors: np.ndarray, tags=None) -> ImageDoc:
    chunks = [Chunk(parent_id=doc_id, box=[0.0, 0.0, 100.0, 80.0], kind=KIND_WHOLE,
                    embedding=vectors[0])]
    chunks += [Chunk(parent_id=doc_id, box=[10.0 * i, 0.0, 10.0 * i + 10, 10.0], kind=KIND_GRID,
                     embedding=v) for i, v in enumerate(vectors[1:], 1)]
    return ImageDoc(id=doc_id, tags=tags or {}, chunks=chunks)


def index_docs(vectors: np.ndarray) -> DocList[ImageDoc]:
    return DocList[ImageDoc](image_doc(f'img{i}', vectors[4 * i:4 * i + 4],
                                       {'group': 'even' if i % 2 == 0 else 'odd'})
                             for i in range(len(vectors) // 4))


def query_docs(vectors: np.ndarray) -> DocList[ImageDoc]:
    return DocList[ImageDoc](ImageDoc(text=f'q{i}', embedding=v) for i, v in enumerate(vectors))


@pytest.fixture
def indexer(tmp_path):
    executor = ChunkIndexer(metas={'workspace': str(tmp_path)})
    yield executor
    executor.close()


@pytest.mark.parametrize('endpoint', ['index', 'search', 'delete', 'passthrough'])
@pytest.mark.parametrize('docs', [None, DocList[ImageDoc]()])
def test_executor_none_and_empty_docs(indexer, endpoint, docs):
    assert getattr(indexer, endpoint)(docs=docs, parameters={}) is docs


def test_executor_index_then_search(indexer, data):
    vectors, _ = data
    docs = index_docs(vectors[:40])
    broken = ImageDoc(id='broken', error='cannot decode', chunks=docs[0].chunks[:1])
    docs.append(broken)
    returned = indexer.index(docs=docs, parameters={})
    assert all(c.embedding is None for d in returned for c in d.chunks)
    assert broken.error == 'cannot decode' and broken.status is None
    assert len(indexer.chunk_index) == 40

    queries = query_docs(vectors[[5, 21]])
    queries.append(ImageDoc(text='failed', error='blank query'))
    queries.append(ImageDoc(text='no embedding'))
    result = indexer.search(docs=queries, parameters={'limit': 2})
    best = hits_of(result[0])[0]
    assert (best.parent_id, best.box, best.kind, best.label) == (
        'img1', [10.0, 0.0, 20.0, 10.0], KIND_GRID, None)
    assert best.similarity == pytest.approx(1.0, abs=1e-3)
    assert hits_of(result[1])[0].parent_id == 'img5'
    assert len(hits_of(result[0])) == 40  # max(100, 10 * limit) covers every chunk
    assert result[2].chunk_hits is None and result[3].chunk_hits is None
    assert not result[0].matches
    assert 'broken' not in set(hits_of(result[0]).parent_ids)

    narrow = indexer.search(docs=query_docs(vectors[[5]]),
                            parameters={'chunk_limit': 3, 'filter': {'group': 'even'}})
    assert len(hits_of(narrow[0])) == 3
    assert all(int(p[3:]) % 2 == 0 for p in hits_of(narrow[0]).parent_ids)


def test_executor_reindex_replaces_and_marks_chunks_without_embeddings(indexer, data):
    vectors, _ = data
    indexer.index(docs=index_docs(vectors[:8]), parameters={})
    unembedded = image_doc('img0', vectors[:2])
    unembedded.chunks[1].embedding = None
    docs = indexer.index(docs=DocList[ImageDoc]([unembedded]), parameters={})
    assert docs[0].error and docs[0].status == 'error'
    indexer.index(docs=DocList[ImageDoc]([image_doc('img0', vectors[100:101])]), parameters={})
    assert len(indexer.chunk_index) == 5


@pytest.mark.parametrize('limit', [0, -3, 'many'])
def test_executor_rejects_bad_limit(indexer, data, limit):
    vectors, _ = data
    indexer.index(docs=index_docs(vectors[:8]), parameters={})
    with pytest.raises(InvalidRequestError):
        indexer.search(docs=query_docs(vectors[:1]), parameters={'limit': limit})


def test_executor_delete(indexer, data):
    vectors, _ = data
    indexer.index(docs=index_docs(vectors[:40]), parameters={})
    indexer.delete(docs=DocList[ImageDoc]([ImageDoc(id='img1'), ImageDoc(id='img2')]),
                   parameters={})
    result = indexer.search(docs=query_docs(vectors[4:12]), parameters={})
    found = {p for doc in result for p in hits_of(doc).parent_ids}
    assert len(found) == 8 and not found & {'img1', 'img2'}


def test_flow_index_search_and_restart(tmp_path, data):
    vectors, _ = data
    flow_args = dict(uses=ChunkIndexer, uses_with={'limit': 5},
                     uses_metas={'workspace': str(tmp_path)})

    def search():
        return flow.post('/search', inputs=query_docs(vectors[[2, 30]]),
                         return_type=DocList[ImageDoc])

    flow = Flow(protocol='grpc', host='127.0.0.1').add(**flow_args)
    with flow:
        indexed = flow.post('/index', inputs=index_docs(vectors[:40]),
                            return_type=DocList[ImageDoc])
        first = search()
    assert len(indexed) == 10
    assert [hits_of(d)[0].parent_id for d in first] == ['img0', 'img7']
    assert len(hits_of(first[0])) == 40

    flow = Flow(protocol='grpc', host='127.0.0.1').add(**flow_args)
    with flow:
        again = search()
    assert [[(h.parent_id, h.box) for h in hits_of(d)] for d in again] == \
        [[(h.parent_id, h.box) for h in hits_of(d)] for d in first]


def test_exists_marks_images_without_chunks_missing(tmp_path):
    from loupe.constants import STATUS_MISSING

    indexer = ChunkIndexer(metas={'workspace': str(tmp_path)})
    chunk = Chunk(box=[0, 0, 4, 4], kind='whole', embedding=np.ones(8, dtype=np.float32))
    indexer.index(DocList[ImageDoc]([ImageDoc(id='here', chunks=DocList[Chunk]([chunk]))]))
    out = indexer.exists(DocList[ImageDoc]([ImageDoc(id='here'), ImageDoc(id='gone')]))
    assert [d.status for d in out] == [None, STATUS_MISSING]
    indexer.close()
