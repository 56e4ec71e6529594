"""The index flow's join: one report per image from two branches that answer in any order."""
from docarray import DocList

from executors.join.executor import merge_branches
from loupe.constants import STATUS_ERROR, STATUS_INDEXED, STATUS_MISSING
from loupe.schema import Chunk, ImageDoc


def branches():
    stored = DocList[ImageDoc]([ImageDoc(id='x', status=STATUS_INDEXED, width=10, height=5,
                                         content_hash='h'),
                                ImageDoc(id='y', status=STATUS_INDEXED, width=3, height=3),
                                ImageDoc(id='z', status=STATUS_ERROR, error='not an image')])
    chunked = DocList[ImageDoc]([ImageDoc(id='x', chunks=DocList[Chunk]([Chunk(box=[0, 0, 10, 5])])),
                                 ImageDoc(id='y', status=STATUS_ERROR, error='encoder failed'),
                                 ImageDoc(id='z', status=STATUS_ERROR, error='not an image')])
    return stored, chunked


def test_join_merges_branch_reports_by_id_in_any_order():
    for flip in (False, True):
        stored, chunked = branches()
        matrix = [chunked, stored] if flip else [stored, chunked]
        merged = {d.id: d for d in merge_branches(matrix)}
        assert merged['x'].status == STATUS_INDEXED and len(merged['x'].chunks) == 1
        assert merged['x'].width == 10 and merged['x'].content_hash == 'h'
        # A failure in either branch makes the image fail, with every distinct reason once.
        assert merged['y'].status == STATUS_ERROR and merged['y'].error == 'encoder failed'
        assert merged['z'].status == STATUS_ERROR and merged['z'].error == 'not an image'


def test_join_says_indexed_only_when_both_branches_do():
    stored = DocList[ImageDoc]([ImageDoc(id='a', status=STATUS_INDEXED),
                                ImageDoc(id='b', status=STATUS_INDEXED),
                                ImageDoc(id='c', status=STATUS_MISSING)])
    chunked = DocList[ImageDoc]([ImageDoc(id='a'), ImageDoc(id='b', status=STATUS_MISSING),
                                 ImageDoc(id='c')])
    merged = {d.id: d.status for d in merge_branches([chunked, stored])}
    assert merged == {'a': STATUS_INDEXED, 'b': STATUS_MISSING, 'c': STATUS_MISSING}
