"""loupe.wire writes exactly docarray's protobuf messages and reads them back to the same docs."""
import numpy as np
import pytest
from docarray import DocList
from docarray.base_doc.mixins.io import IOMixin
from docarray.proto import DocListProto

from loupe.schema import Chunk, ImageDoc, Match


def _docarray_to_protobuf(doc):
    """docarray's own codec, which FastProtobuf replaces (recursing into nested docs)."""
    return IOMixin.to_protobuf(doc)


def _docarray_from_protobuf(cls, message):
    return IOMixin.from_protobuf.__func__(cls, message)


MATCHES = [
    Match(),
    Match(parent_id='a', score=0.5, scores={'chunk': 0.5, 'rerank': 0.25},
          highlight_box=[1.0, 2.5, 30.0, 40.0], highlight_source='chunk', chunk_kind='grid'),
    Match(parent_id='b', uri='/photos/b.jpg', width=640, height=480, preview=b'\xff\xd8jpeg',
          tags={'album': 'trip', 'year': 2024, 'ok': True, 'people': ['ann', 'bob'],
                'nested': {'x': 1.5}, 'none': None}),
]
CHUNKS = [
    Chunk(),
    Chunk(parent_id='a', box=[0.0, 0.0, 640.0, 480.0], kind='whole',
          embedding=np.arange(8, dtype=np.float32)),
    Chunk(parent_id='a', box=[0, 0, 10, 10], kind='detector', label='dog', score=0.9),
]
IMAGES = [
    ImageDoc(),
    ImageDoc(text='a dog', embedding=np.ones(4, dtype=np.float32), matches=MATCHES),
    ImageDoc(uri='x.jpg', blob=b'bytes', tags={'k': 'v'}, width=3, height=2, chunks=CHUNKS,
             status='indexed', error=None, content_hash='abc'),
]


@pytest.mark.parametrize('doc', MATCHES + CHUNKS + IMAGES, ids=lambda d: type(d).__name__)
def test_writes_the_message_docarray_writes(doc):
    assert doc.to_protobuf() == _docarray_to_protobuf(doc)


@pytest.mark.parametrize('doc', MATCHES + CHUNKS + IMAGES, ids=lambda d: type(d).__name__)
def test_reads_back_what_docarray_reads(doc):
    message = _docarray_to_protobuf(doc)
    fast = type(doc).from_protobuf(message)
    reference = _docarray_from_protobuf(type(doc), message)
    assert fast.id == doc.id
    assert _docarray_to_protobuf(fast) == _docarray_to_protobuf(reference)


def test_round_trip_of_a_search_response_keeps_every_value():
    docs = DocList[ImageDoc]([IMAGES[1]])
    back = DocList[ImageDoc].from_protobuf(DocListProto.FromString(
        docs.to_protobuf().SerializeToString()))
    match = back[0].matches[1]
    assert (match.parent_id, match.score, match.scores, match.highlight_box) == (
        'a', 0.5, {'chunk': 0.5, 'rerank': 0.25}, [1.0, 2.5, 30.0, 40.0])
    assert back[0].matches[2].tags == MATCHES[2].tags
    assert np.array_equal(back[0].embedding, IMAGES[1].embedding)


def test_values_are_validated_as_docarray_validates_them():
    message = Match(score=1.0).to_protobuf()
    message.data['score'].Clear()
    message.data['score'].text = 'high'
    with pytest.raises(ValueError):
        Match.from_protobuf(message)


@pytest.mark.parametrize('setting, fast', [('1', True), ('0', False)])
def test_the_fast_codec_can_be_turned_off(setting, fast):
    """LOUPE_FAST_CODEC=0: loupe's documents are plain docarray documents, and still travel."""
    import os
    import subprocess
    import sys

    script = (
        'import numpy as np\n'
        'from docarray import DocList\n'
        'from docarray.proto import DocListProto\n'
        'from loupe.schema import ImageDoc, Match\n'
        'from loupe.wire import FastProtobuf\n'
        'docs = DocList[ImageDoc]([ImageDoc(text="q", embedding=np.ones(3, dtype=np.float32),\n'
        '                                   matches=[Match(parent_id="a", score=0.5)])])\n'
        'back = DocList[ImageDoc].from_protobuf(DocListProto.FromString(\n'
        '    docs.to_protobuf().SerializeToString()))\n'
        'assert back[0].matches[0].parent_id == "a" and back[0].matches[0].score == 0.5\n'
        'print(issubclass(ImageDoc, FastProtobuf), issubclass(Match, FastProtobuf))\n')
    env = {**os.environ, 'LOUPE_FAST_CODEC': setting}
    out = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True,
                         check=True, timeout=300).stdout.split()
    assert out == [str(fast), str(fast)]
