"""Explore features on plain data with known answers: recommend, duplicate pairs and groups,
whole-image vectors from a real chunk index, and the map's projection and layout."""
from types import SimpleNamespace

import numpy as np
import pytest

from loupe.ann import ChunkIndex
from loupe.constants import KIND_GRID, KIND_WHOLE
from loupe.errors import InvalidRequestError
from loupe.explore import params as P
from loupe.explore import service
from loupe.explore.groups import EXACT, PERCEPTUAL, SEMANTIC, Pairs, group_pairs, keep_order
from loupe.explore.hamming import choose_bands, pairs_within
from loupe.explore.mapping import grid_layout, to_2d
from loupe.explore.recommend import SIMILARITY, SVM, SVM_MIN_LIKES, recommend
from loupe.explore.vectors import ChunkIndexVectors


def two_clusters(n=100, dim=32, seed=0, spread=0.35):
    """Ids a0.. around one direction, b0.. around an orthogonal one."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((2, dim), np.float32)
    centres[0, 0] = centres[1, 1] = 1
    ids, rows = [], []
    for c, name in enumerate('ab'):
        for i in range(n):
            ids.append(f'{name}{i}')
            rows.append(centres[c] + rng.normal(0, spread / np.sqrt(dim), dim))
    return ids, np.array(rows, np.float32)


@pytest.mark.parametrize('likes,dislikes,model', [
    (['a1', 'a2'], [], SIMILARITY),
    ([f'a{i}' for i in range(SVM_MIN_LIKES)], [], SVM),
    (['a1', 'a2'], ['b1', 'b2'], SVM),
])
def test_recommend_returns_the_liked_cluster_first(likes, dislikes, model):
    ids, vectors = two_clusters()
    ranking = recommend(ids, vectors, likes, dislikes, limit=10, ask=6)
    assert ranking.model == model
    assert len(ranking.ids) == 10 and all(i.startswith('a') for i in ranking.ids)  # precision@10 = 1
    voted = set(likes) | set(dislikes)
    assert not voted & set(ranking.ids) and not voted & set(ranking.ask)
    assert ranking.scores == sorted(ranking.scores, reverse=True)
    # ask alternates the least certain with the top-ranked: both kinds are in it
    assert len(ranking.ask) == 6 and len(set(ranking.ask)) == 6
    assert ranking.ask[1] == ranking.ids[0]
    if model == SVM:  # the uncertain ones sit nearest the boundary (decision value 0)
        assert abs(ranking.ask_scores[0]) <= min(abs(s) for s in ranking.scores)
        assert abs(ranking.ask_scores[0]) <= abs(ranking.ask_scores[2]) <= abs(ranking.ask_scores[4])


def test_recommend_ranks_everything_but_the_votes_when_asked_for_more():
    ids, vectors = two_clusters(n=5)
    ranking = recommend(ids, vectors, ['a0'], ['b0'], limit=100)
    assert sorted(ranking.ids) == sorted(set(ids) - {'a0', 'b0'})
    assert all(i.startswith('a') for i in ranking.ids[:4])


@pytest.mark.parametrize('n,threshold', [(300, 10), (3000, 10), (3000, 4), (500, 0), (2000, 16)])
def test_hamming_pairs_equal_brute_force(n, threshold):
    rng = np.random.default_rng(n + threshold)
    hashes = rng.integers(0, 2 ** 63, size=n, dtype=np.uint64) * np.uint64(2) + \
        rng.integers(0, 2, size=n, dtype=np.uint64)
    for i in range(0, n - 1, 7):  # near copies at every distance up to threshold + 2
        bits = rng.choice(64, size=i % (threshold + 3), replace=False)
        hashes[i + 1] = hashes[i] ^ np.uint64(sum(1 << int(b) for b in bits))
    left, right, distance = pairs_within(hashes, threshold)
    every = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    expected = {(i, j) for i, j in zip(*np.nonzero(np.triu(every <= threshold, 1)))}
    assert set(zip(left.tolist(), right.tolist())) == expected and expected
    assert (distance == every[left, right]).all()


def test_band_count_follows_the_collection_size():
    assert choose_bands(1000, 10) > choose_bands(1_000_000, 10) >= 3


def test_groups_are_connected_components_with_the_largest_then_oldest_first():
    # items: 0 small old, 1 big new, 2 big old, 3 alone, 4 with two paths only
    order = keep_order([10, 100, 100, 50, 20], [10, 100, 100, 50, 20], [1, 5, 2, 0, 0],
                       ['/a', '/b', '/c', '/d', '/e'])
    pairs = [Pairs(np.array([0]), np.array([1]), np.array([0.9]), PERCEPTUAL),
             Pairs(np.array([1]), np.array([2]), np.array([0.97]), SEMANTIC),
             Pairs(np.array([4]), np.array([4]), np.array([1.0]), EXACT)]
    groups = group_pairs(5, pairs, order)
    assert [[m.index for m in g.members] for g in groups] == [[2, 1, 0], [4]]
    keep, second, third = groups[0].members
    assert keep.similarity is None
    assert (second.method, second.joined_to, second.similarity) == (SEMANTIC, 2, pytest.approx(0.97))
    assert (third.method, third.joined_to) == (PERCEPTUAL, 1)
    assert groups[0].methods == [PERCEPTUAL, SEMANTIC] and groups[1].methods == [EXACT]


def _chunk(kind, vector):
    return SimpleNamespace(box=[0, 0, 10, 10], kind=kind, label=None, embedding=vector)


@pytest.fixture
def clustered_index(tmp_path):
    """A real chunk index: two clusters of whole-image vectors, each image with grid chunks."""
    ids, vectors = two_clusters(n=40, spread=0.8)
    rng = np.random.default_rng(1)
    vectors[ids.index('a1')] = vectors[ids.index('a0')] + 0.01  # a burst shot of a0
    index = ChunkIndex(tmp_path / 'chunks')
    index.upsert_many((id_, [_chunk(KIND_WHOLE, v)] + [_chunk(KIND_GRID, rng.normal(size=32))
                                                        for _ in range(3)],
                       {'cluster': id_[0]}) for id_, v in zip(ids, vectors))
    yield index, ids, vectors
    index.close()


def test_whole_vectors_come_from_the_chunk_index(clustered_index):
    index, ids, vectors = clustered_index
    view = ChunkIndexVectors(index)
    found, stored = view.whole_vectors(['b3', 'nope', 'a0'])
    assert found == ['b3', 'a0']
    expected = vectors[[ids.index('b3'), ids.index('a0')]]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(stored, expected, atol=2e-3)  # stored as float16
    assert len(view.whole_vectors(filter={'cluster': 'b'})[0]) == 40
    (row,) = view.nearest_whole(stored[1:], 5)
    assert row[0][0] == 'a0' and all(i.startswith('a') for i, _ in row)


def test_service_recommend_uses_the_ann_candidates_above_the_exhaustive_size(clustered_index):
    index, ids, _ = clustered_index
    view = ChunkIndexVectors(index)
    for exhaustive in (10_000, 0):  # everything scored, then ANN candidates only
        ranking = service.recommend(view, ['a2', 'a3'], ['b0'], limit=10, ask=2, candidates=30,
                                    exhaustive_max=exhaustive, filter=None)
        assert all(i.startswith('a') for i in ranking.ids) and len(ranking.ids) == 10
    with pytest.raises(InvalidRequestError, match='unknown image ids in like: zz'):
        service.recommend(view, ['zz'], [], 10, 2, 30, 10, None)
    with pytest.raises(InvalidRequestError, match='both liked and disliked'):
        service.recommend(view, ['a1'], ['a1'], 10, 2, 30, 10, None)


def test_semantic_edges_join_only_near_identical_vectors(clustered_index):
    index, *_ = clustered_index
    edges = service.semantic_edges(ChunkIndexVectors(index), 0.95, 5, None)
    assert [(a, b) for a, b, _ in edges] == [('a0', 'a1')]


def test_parameters_are_checked_in_one_place():
    with pytest.raises(InvalidRequestError, match="'like' is required"):
        P.read('/recommend', {})
    with pytest.raises(InvalidRequestError, match=r'semantic_threshold must be a number in '
                                                  r'\[0.5, 1\], got 1.5'):
        P.read('/duplicates', {'semantic_threshold': 1.5})
    with pytest.raises(InvalidRequestError, match="method must be one of exact, perceptual, "
                                                  "semantic, all, got 'fuzzy'"):
        P.read('/duplicates', {'method': 'fuzzy'})
    with pytest.raises(InvalidRequestError, match='limit must be an integer'):
        P.read('/recommend', {'like': ['x'], 'limit': 2.5})
    with pytest.raises(InvalidRequestError, match='unknown parameter top_k for /map; valid: '
                                                  'sample, seed, projection'):
        P.read('/map', {'top_k': 3})
    read = P.read('/recommend', {'like': ['x', 'y', 'x'], 'limit': 3.0})
    assert read['like'] == ['x', 'y'] and read['limit'] == 3 and read['ask'] == 4


def test_map_separates_clusters_and_gives_every_point_its_own_cell():
    ids, vectors = two_clusters(n=150)
    xy = to_2d(vectors)
    assert xy.min() >= 0 and xy.max() <= 1
    a, b = xy[:150].mean(0), xy[150:].mean(0)
    assert np.linalg.norm(a - b) > 0.4
    for points in (xy[:40], xy):  # optimal assignment, then greedy
        cells, cols, rows = grid_layout(points)
        assert len({tuple(c) for c in cells.tolist()}) == len(points)
        assert cells[:, 0].max() < cols and cells[:, 1].max() < rows
    cells, cols, _ = grid_layout(xy)
    assert abs(cells[:150, 0].mean() - cells[150:, 0].mean()) + \
        abs(cells[:150, 1].mean() - cells[150:, 1].mean()) > cols / 4


@pytest.mark.slow
def test_umap_projection_separates_clusters_where_installed():
    pytest.importorskip('umap', reason="UMAP is the optional 'umap' extra (numba): not installed")
    _, vectors = two_clusters(n=60)
    xy = to_2d(vectors, 'umap')
    assert np.linalg.norm(xy[:60].mean(0) - xy[60:].mean(0)) > 0.4
