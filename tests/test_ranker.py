"""Ranker: chunk hits become ranked images whose highlight is the best chunk's box."""
import pytest
from docarray import DocList

from executors.ranker.executor import Ranker
from loupe.constants import SCORE_CHUNK, SOURCE_CHUNK
from loupe.errors import InvalidRequestError
from loupe.rank import hits_of_matches, rank_parents
from loupe.schema import ImageDoc, Match


def hit(parent, score, box, kind='grid'):
    return Match(parent_id=parent, score=score, scores={SCORE_CHUNK: score}, highlight_box=box,
                 highlight_source=SOURCE_CHUNK, chunk_kind=kind)


# Image a: one very good chunk; image b: three fairly good chunks; image c: one weak chunk.
HITS = [hit('a', 0.90, [10, 10, 50, 50]), hit('a', 0.20, [0, 0, 100, 100], 'whole'),
        hit('b', 0.70, [5, 5, 20, 20]), hit('b', 0.65, [0, 0, 30, 30]),
        hit('b', 0.60, [1, 1, 9, 9]), hit('c', 0.30, [2, 2, 4, 4])]


@pytest.mark.parametrize('aggregation, order', [
    ('max', ['a', 'b', 'c']),
    ('mean', ['b', 'a', 'c']),
    ('sum_top_k', ['b', 'a', 'c']),
])
def test_aggregations_order_images(aggregation, order):
    ranked = rank_parents(HITS, aggregation=aggregation, top_k=3)
    assert [m.parent_id for m in ranked] == order
    assert all(m.scores[SCORE_CHUNK] == m.score for m in ranked)


def test_highlight_is_the_best_chunk_box_whatever_the_aggregation():
    for aggregation in ('max', 'mean', 'sum_top_k'):
        by_id = {m.parent_id: m for m in rank_parents(HITS, aggregation=aggregation)}
        assert by_id['a'].highlight_box == [10, 10, 50, 50]
        assert by_id['b'].highlight_box == [5, 5, 20, 20]
        assert by_id['a'].highlight_source == SOURCE_CHUNK and by_id['a'].chunk_kind == 'grid'


@pytest.mark.parametrize('limit', [1, 2, 5])
def test_limit(limit):
    assert len(rank_parents(HITS, limit=limit)) == min(limit, 3)


def test_sum_top_k_counts_only_top_k():
    ranked = rank_parents(HITS, aggregation='sum_top_k', top_k=1)
    assert [m.parent_id for m in ranked] == ['a', 'b', 'c']


@pytest.mark.parametrize('kwargs, message', [({'limit': 0}, 'limit'), ({'limit': -3}, 'limit'),
                                              ({'top_k': 0}, 'top_k')])
def test_invalid_numbers(kwargs, message):
    with pytest.raises(InvalidRequestError, match=message):
        rank_parents(HITS, **kwargs)


def test_unknown_aggregation_lists_valid_ones():
    with pytest.raises(ValueError, match='max, mean, sum_top_k'):
        rank_parents(HITS, aggregation='median')
    with pytest.raises(ValueError, match='max, mean, sum_top_k'):
        Ranker(aggregation='median')


def test_executor_request_overrides_and_errors(tmp_path):
    ranker = Ranker(limit=2, image_store=str(tmp_path / 'no-store'))
    docs = DocList[ImageDoc]([ImageDoc(text='q', chunk_hits=hits_of_matches(HITS).to_bytes()),
                              ImageDoc(text='', error='empty query')])
    (out, failed) = ranker.rank(docs, parameters={'aggregation': 'mean', 'limit': 3})
    assert [m.parent_id for m in out.matches] == ['b', 'a', 'c']
    assert not failed.matches
    assert out.chunk_hits is None
    again = DocList[ImageDoc]([ImageDoc(text='q', chunk_hits=hits_of_matches(HITS).to_bytes())])
    assert len(ranker.rank(again, parameters={})[0].matches) == 2
    with pytest.raises(InvalidRequestError, match=r'limit must be an integer in \[1, 1000\], got 0'):
        ranker.rank(docs, parameters={'limit': 0})
    assert not ranker.rank(None, parameters={})


def test_images_without_a_parent_record_take_no_slot(tmp_path):
    from conftest import jpeg_bytes, synthetic_image
    from loupe.store import ParentStore, build_record

    store = ParentStore(tmp_path / 'store')
    store.put([build_record(p, jpeg_bytes(synthetic_image(seed=i))) for i, p in enumerate('ac')])
    store.close()  # LMDB: one environment per path and process (the writer runs elsewhere)
    ranker = Ranker(limit=2, image_store=str(tmp_path / 'store'))
    try:
        query = ImageDoc(text='q', chunk_hits=hits_of_matches(HITS).to_bytes())
        (out,) = ranker.rank(DocList[ImageDoc]([query]),
                             parameters={'aggregation': 'mean'})
        assert [m.parent_id for m in out.matches] == ['a', 'c']  # 'b' (best by mean) is gone
    finally:
        ranker.close()


def test_flow(tmp_path):
    from jina import Flow

    docs = DocList[ImageDoc]([ImageDoc(text='q', chunk_hits=hits_of_matches(HITS).to_bytes())])
    with Flow(protocol='grpc', host='127.0.0.1').add(
            uses=Ranker, uses_with={'image_store': str(tmp_path / 'no-store')}) as f:
        (out,) = f.post('/search', inputs=docs, parameters={'limit': 2},
                        return_type=DocList[ImageDoc])
    assert [m.parent_id for m in out.matches] == ['a', 'b']
    assert out.matches[0].highlight_box == [10, 10, 50, 50]


def test_aggregated_scores_and_ties():
    by_id = {m.parent_id: m.score for m in rank_parents(HITS, aggregation='mean')}
    assert by_id == pytest.approx({'a': 0.55, 'b': 0.65, 'c': 0.30})
    by_id = {m.parent_id: m.score for m in rank_parents(HITS[::-1], aggregation='sum_top_k',
                                                        top_k=2)}
    assert by_id == pytest.approx({'a': 1.10, 'b': 1.35, 'c': 0.30})
    tied = [hit('x', 0.5, [0, 0, 1, 1]), hit('y', 0.5, [0, 0, 2, 2]), hit('x', 0.5, [0, 0, 3, 3])]
    ranked = rank_parents(tied)
    assert [m.parent_id for m in ranked] == ['x', 'y']  # the parent hit first comes first
    assert ranked[0].highlight_box == [0, 0, 1, 1]
    assert rank_parents([]) == []
