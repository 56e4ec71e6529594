"""loupe.transport against Jina's own client: the same answers, and a deadline when a gateway hangs."""
import socket
import threading

import pytest
from docarray import DocList
from jina import Client, Flow

from executors.ranker.executor import Ranker
from loupe.ann import ChunkHits
from loupe.client import split_address
from loupe.constants import DEFAULT_PORT
from loupe.errors import LoupeError
from loupe.schema import ImageDoc
from loupe.transport import GrpcGateway

HITS = [('a', 0.9, [0, 0, 10, 10]), ('b', 0.8, [5, 5, 20, 20]), ('a', 0.6, [1, 1, 2, 2]),
        ('c', 0.5, [0, 0, 4, 4]), ('c', 0.4, [3, 3, 9, 9])]


def _query() -> DocList[ImageDoc]:
    """A query as the chunk indexer hands it to the ranker: its hits as one compact field."""
    hits = ChunkHits.of([p for p, _, _ in HITS], [box for _, _, box in HITS],
                        [s for _, s, _ in HITS], ['grid'] * len(HITS), [None] * len(HITS))
    return DocList[ImageDoc]([ImageDoc(text='q', chunk_hits=hits.to_bytes())])


def _ranked(docs):
    return [(m.parent_id, round(m.score, 6), m.highlight_box) for m in docs[0].matches]


def test_the_same_requests_through_jina_client_give_the_same_answers():
    with Flow(protocol='grpc', host='127.0.0.1').add(uses=Ranker) as flow:
        ours = GrpcGateway('127.0.0.1', flow.port, timeout=60)
        theirs = Client(host='127.0.0.1', port=flow.port, protocol='grpc')
        try:
            answers = {}
            for name, parameters in (('default', {}), ('limit', {'limit': 2}),
                                     ('mean', {'aggregation': 'mean'})):
                answers[name] = _ranked(ours.post('/search', _query(), parameters,
                                                  DocList[ImageDoc]))
                assert answers[name] == _ranked(theirs.post(
                    '/search', _query(), parameters=parameters, return_type=DocList[ImageDoc]))
            # Known answers: best chunk per image (max), its box; the mean of each image's hits.
            assert answers['default'] == [('a', 0.9, [0, 0, 10, 10]), ('b', 0.8, [5, 5, 20, 20]),
                                          ('c', 0.5, [0, 0, 4, 4])]
            assert answers['limit'] == answers['default'][:2]
            assert [r[:2] for r in answers['mean']] == [('b', 0.8), ('a', 0.75), ('c', 0.45)]
            # The ranker has no /exists handler: the base executor's pass-through serves it.
            asked = DocList[ImageDoc]([ImageDoc(id='x', text='kept', tags={'a': 1})])
            for answer in (ours.post('/exists', asked, None, DocList[ImageDoc]),
                           theirs.post('/exists', asked, return_type=DocList[ImageDoc])):
                assert [(d.id, d.text, d.tags, d.error) for d in answer] == [
                    ('x', 'kept', {'a': 1}, None)]
            with pytest.raises(LoupeError, match=r'limit must be an integer in \[1, 1000\]'):
                ours.post('/search', _query(), {'limit': 1.5}, DocList[ImageDoc])
            with pytest.raises(Exception, match=r'limit must be an integer in \[1, 1000\]'):
                theirs.post('/search', _query(), parameters={'limit': 1.5},
                            return_type=DocList[ImageDoc])
        finally:
            ours.close()


def test_a_gateway_that_never_answers_is_a_timeout_not_a_hang():
    """A socket that accepts connections and says nothing: the request ends at its deadline."""
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen()
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    gateway = GrpcGateway('127.0.0.1', server.getsockname()[1], timeout=1)
    try:
        with pytest.raises(LoupeError, match='/search: no answer from 127.0.0.1:.* within 1 s'):
            gateway.post('/search', _query())
    finally:
        gateway.close()
        server.close()
        for connection in held:
            connection.close()


def test_a_closed_port_is_a_clear_error():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    gateway = GrpcGateway('127.0.0.1', port, timeout=30)
    try:
        with pytest.raises(LoupeError, match=f'/exists: cannot reach 127.0.0.1:{port}'):
            gateway.post('/exists', DocList[ImageDoc]([ImageDoc(id='x')]))
    finally:
        gateway.close()


@pytest.mark.parametrize('given, expected', [
    (('10.0.0.2',), ('10.0.0.2', DEFAULT_PORT)),
    (('10.0.0.2:55410',), ('10.0.0.2', 55410)),  # as the CLI's --server takes it
    (('10.0.0.2', 55410), ('10.0.0.2', 55410)),
    (('10.0.0.2:55410', 55410), ('10.0.0.2', 55410)),
    ((':55410',), ('127.0.0.1', 55410)),
    (('[::1]:55410',), ('[::1]', 55410)),
    (('::1',), ('::1', DEFAULT_PORT)),
])
def test_an_address_is_host_and_port_or_host_colon_port(given, expected):
    assert split_address(*given) == expected


@pytest.mark.parametrize('given, message', [
    (('10.0.0.2:1', 2), 'two ports'), (('10.0.0.2:70000',), 'port must be 1-65535')])
def test_a_contradictory_or_impossible_address_is_a_clear_error(given, message):
    with pytest.raises(LoupeError, match=message):
        split_address(*given)
