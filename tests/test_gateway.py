"""The loupe gateway: who may call, what a request may hold, what the service reads, over HTTP
and gRPC. Plain rules first (loupe.guard, loupe.httpjson, loupe.fetch, loupe.intake), then the
service flow with its gateway on both protocols, as a client on another site or process sees it.
"""
import asyncio
import base64
import functools
import http.server
import io
import json
import os
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from docarray import DocList
from PIL import Image

from conftest import environment, jpeg_bytes, synthetic_image
from loupe import guard
from loupe.client import Loupe
from loupe.constants import (ENV_CLIP_MODEL, ENV_DETECTOR_MODEL, ENV_DINO_MODEL, ENV_OWL_MODEL,
                             ENV_WORKSPACE, SCORE_RERANK, STATUS_ERROR, STATUS_INDEXED)
from loupe.errors import ImageLoadError, InvalidRequestError, LoupeError
from loupe.fetch import ENV_ALLOW_FOLDERS, ENV_ALLOW_URLS, SourcePolicy, fetch, fetch_all
from loupe.httpjson import parse_request, response_body
from loupe.intake import Intake
from loupe.schema import ImageDoc
from loupe.sources import content_id

KEY = 'correct horse battery staple'


# --- plain rules ----------------------------------------------------------------------------

@pytest.mark.parametrize('headers, accepted', [
    ({}, False),
    ({'x-api-key': KEY}, True),
    ({'authorization': f'Bearer {KEY}'}, True),
    ({'x-api-key': KEY[:-1]}, False),
    ({'authorization': KEY}, False),  # no scheme
])
def test_api_key_is_read_from_either_header(headers, accepted):
    assert guard.key_accepted(KEY, headers) is accepted
    assert guard.key_accepted(None, headers)  # no key configured: open


def test_api_key_from_the_environment_wins(monkeypatch):
    monkeypatch.setenv(guard.ENV_API_KEY, 'env')
    assert guard.api_key('yaml') == 'env'
    monkeypatch.delenv(guard.ENV_API_KEY)
    assert guard.api_key('yaml') == 'yaml' and guard.api_key(None) is None


@pytest.mark.parametrize('method, headers, refused', [
    ('POST', {}, 'Content-Type'),  # a Blob body without a type
    ('POST', {'content-type': 'text/plain'}, 'Content-Type'),
    ('POST', {'content-type': 'application/json; charset=utf-8'}, None),
    ('POST', {'content-type': 'application/json', 'origin': 'http://evil.example'}, 'cross-origin'),
    ('POST', {'content-type': 'application/json', 'origin': 'null'}, 'cross-origin'),
    ('POST', {'content-type': 'application/json', 'sec-fetch-site': 'cross-site'}, 'cross-origin'),
    ('POST', {'content-type': 'application/json', 'origin': 'http://127.0.0.1:8080'}, None),
    ('POST', {'content-type': 'application/json', 'origin': 'http://127.0.0.1:8081'}, 'cross-origin'),
    ('POST', {'content-type': 'application/json', 'origin': 'https://app.example'}, None),
    ('GET', {'origin': 'http://evil.example'}, None),  # reads change nothing
])
def test_cross_site_rules(method, headers, refused):
    reason = guard.cross_site_refusal(method, headers, '127.0.0.1:8080', ['https://app.example'])
    assert (reason is None) if refused is None else (refused in reason)


def test_json_codec_carries_bytes_as_base64_both_ways():
    picture = jpeg_bytes(synthetic_image(seed=1))
    body = {'data': [{'blob': base64.b64encode(picture).decode()}, {'id': 'x', 'text': 'a dog'}],
            'parameters': {'limit': 3}}
    docs, anonymous, parameters = parse_request(json.loads(json.dumps(body)))
    assert docs[0].blob == picture and anonymous == [True, False] and parameters == {'limit': 3}
    again, _, _ = parse_request(json.loads(json.dumps(response_body(docs))))
    assert again[0].blob == picture and again[1].id == 'x'


@pytest.mark.parametrize('body, message', [
    ([], 'JSON object'),
    ({'docs': []}, 'JSON object'),
    ({'data': 'abc'}, 'list'),
    ({'data': [{'blob': 'not base64!'}]}, 'base64'),
    ({'data': [{'blob': 12}]}, 'base64'),
    ({'data': [{'tags': 'abc'}]}, 'tags'),
    ({'data': [{}], 'parameters': [1]}, 'parameters'),
])
def test_malformed_bodies_are_clear_errors(body, message):
    with pytest.raises(InvalidRequestError, match=message):
        parse_request(body)


@pytest.fixture(scope='module')
def web_server(tmp_path_factory):
    """A loopback HTTP server with a picture; counts the requests it gets."""
    root = tmp_path_factory.mktemp('web')
    (root / 'square.jpg').write_bytes(jpeg_bytes(synthetic_image(seed=7)))
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{server.server_address[1]}', hits
    server.shutdown()


@pytest.fixture(scope='module')
def silent_port():
    """A socket that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.mark.parametrize('uri', ['/etc/passwd', 'file:///etc/passwd', '/proc/self/environ',
                                 '/no/such/file.jpg', 'ftp://example.com/a.jpg',
                                 'http://127.0.0.1:9/x.jpg'])
def test_by_default_nothing_is_read_and_the_error_reveals_nothing(uri):
    with pytest.raises(ImageLoadError) as error:
        run(fetch(uri, SourcePolicy()))
    assert 'not read' in str(error.value)
    assert 'No such' not in str(error.value) and 'ermission' not in str(error.value)


def test_allowed_folders_are_read_with_regular_file_checks_and_caps(tmp_path):
    allowed, outside = tmp_path / 'allowed', tmp_path / 'outside'
    allowed.mkdir(), outside.mkdir()
    picture = jpeg_bytes(synthetic_image(seed=2))
    (allowed / 'a.jpg').write_bytes(picture)
    (outside / 'secret.jpg').write_bytes(picture)
    (allowed / 'link.jpg').symlink_to(outside / 'secret.jpg')
    os.mkfifo(allowed / 'fifo.jpg')
    policy = SourcePolicy.create([str(allowed)])
    assert run(fetch(str(allowed / 'a.jpg'), policy)) == picture
    assert run(fetch(f'file://{allowed}/a.jpg', policy)) == picture
    for name, message in [(allowed / 'link.jpg', 'not read'),
                          (allowed / '..' / 'outside' / 'secret.jpg', 'not read'),
                          (outside / 'secret.jpg', 'not read'), ('/etc/passwd', 'not read'),
                          (allowed / 'fifo.jpg', 'not a regular file'),
                          (allowed, 'not a regular file'),
                          (allowed / 'gone.jpg', 'no such file')]:
        with pytest.raises(ImageLoadError, match=message):
            run(fetch(str(name), policy))
    small = SourcePolicy.create([str(allowed)], max_bytes=100)
    with pytest.raises(ImageLoadError, match='larger than 100 bytes'):
        run(fetch(str(allowed / 'a.jpg'), small))


def test_urls_only_where_a_pattern_allows_and_never_to_private_addresses_by_wildcard(web_server):
    base, hits = web_server
    port = int(base.rsplit(':', 1)[1])
    hits.clear()
    for policy in [SourcePolicy(), SourcePolicy.create(urls=['https://*']),
                   SourcePolicy.create(urls=['http://*']),  # any public host: not loopback
                   SourcePolicy.create(urls=[f'http://127.0.0.1:{port + 1}'])]:
        with pytest.raises(ImageLoadError, match='not read'):
            run(fetch(f'{base}/square.jpg', policy))
    assert hits == []  # no request reached the loopback server (no SSRF)
    allowed = SourcePolicy.create(urls=[f'http://127.0.0.1:{port}'])
    assert run(fetch(f'{base}/square.jpg', allowed)) == jpeg_bytes(synthetic_image(seed=7))
    with pytest.raises(ImageLoadError, match='404'):
        run(fetch(f'{base}/missing.jpg', allowed))
    with pytest.raises(ImageLoadError, match='larger than'):
        run(fetch(f'{base}/square.jpg', SourcePolicy.create(urls=[base], max_bytes=10)))
    with pytest.raises(ValueError, match='expected http'):
        SourcePolicy.create(urls=['127.0.0.1'])


def test_a_silent_source_costs_one_time_box_and_the_others_still_arrive(web_server, silent_port):
    base, _ = web_server
    policy = SourcePolicy.create(urls=[base, f'http://127.0.0.1:{silent_port}'], timeout=1.5)
    uris = [f'http://127.0.0.1:{silent_port}/{i}.jpg' for i in range(3)] + [f'{base}/square.jpg']
    results = run(fetch_all(uris, policy))
    assert all(isinstance(r, ImageLoadError) and 'within 1.5 s' in str(r) for r in results[:3])
    assert results[3] == jpeg_bytes(synthetic_image(seed=7))


def test_intake_caps_documents_and_gives_ids_from_the_content():
    intake = Intake(max_docs=3, max_blob_bytes=50_000)
    picture = jpeg_bytes(synthetic_image(seed=3))
    docs = [ImageDoc(blob=picture), ImageDoc(id='mine', blob=picture),
            ImageDoc(blob=jpeg_bytes(synthetic_image(1200, 900, seed=4), quality=100))]
    run(intake.prepare('/index', docs, [True, False, True]))
    assert docs[0].id == content_id(picture) and docs[1].id == 'mine'
    assert docs[2].status == STATUS_ERROR and 'at most 50,000' in docs[2].error
    with pytest.raises(InvalidRequestError, match='4 documents in one /delete request; at most '
                                                  '3 here'):
        run(intake.prepare('/delete', [ImageDoc() for _ in range(4)]))
    with pytest.raises(InvalidRequestError, match='9 documents in one /map request; at most 8'):
        run(Intake().prepare('/map', [ImageDoc() for _ in range(9)]))  # loupe.parameters' cap


# --- the service ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def allowed_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('allowed')
    (folder / 'inside.jpg').write_bytes(jpeg_bytes(synthetic_image(seed=11)))
    return folder


@pytest.fixture(scope='module')
def service(tiny_clip, tiny_owlvit, tiny_detector, tiny_dino, tmp_path_factory, allowed_folder,
            web_server, silent_port):
    """The serve flow on gRPC and HTTP with an API key, one allowed folder and two allowed URL
    patterns (the loopback picture server and the silent socket)."""
    from loupe.flows import load_flow

    base, _ = web_server
    env = {ENV_CLIP_MODEL: tiny_clip, ENV_OWL_MODEL: tiny_owlvit,
           ENV_DETECTOR_MODEL: tiny_detector, ENV_DINO_MODEL: tiny_dino,
           ENV_WORKSPACE: str(tmp_path_factory.mktemp('workspace')), guard.ENV_API_KEY: KEY,
           ENV_ALLOW_FOLDERS: str(allowed_folder),
           ENV_ALLOW_URLS: f'{base},http://127.0.0.1:{silent_port}'}
    grpc_port, http_port = _free_port(), _free_port()
    with environment(env):
        flow = load_flow('serve', port=[grpc_port, http_port], protocol=['grpc', 'http'],
                         gateway={'fetch_timeout': 3})
        with flow:
            yield grpc_port, http_port


def post(port, path, body, headers=None, raw=False):
    """(status, decoded JSON answer) of an HTTP POST; ``headers`` None: JSON with the key."""
    if headers is None:
        headers = {'Content-Type': 'application/json', 'x-api-key': KEY}
    data = body if raw else json.dumps(body).encode()
    request = urllib.request.Request(f'http://127.0.0.1:{port}{path}', data=data,
                                     headers=headers, method='POST')
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def get(port, path, headers=None):
    request = urllib.request.Request(f'http://127.0.0.1:{port}{path}', headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_http_images_as_base64_get_content_ids_and_previews_come_back(service):
    _, port = service
    picture = jpeg_bytes(synthetic_image(400, 300, seed=21))
    status, answer = post(port, '/index', {'data': [{'blob': b64(picture), 'tags': {'k': 'v'}}]})
    assert status == 200
    (doc,) = answer['data']
    assert doc['status'] == STATUS_INDEXED and doc['id'] == content_id(picture)
    status, answer = post(port, '/search', {'data': [{'blob': b64(picture)}],
                                            'parameters': {'limit': 1, 'with_preview': True,
                                                           'filter': {'k': 'v'}}})
    assert status == 200
    (match,) = answer['data'][0]['matches']
    assert match['parent_id'] == content_id(picture)
    preview = Image.open(io.BytesIO(base64.b64decode(match['preview'])))
    assert preview.format == 'JPEG' and preview.size == (400, 300)


def test_http_requests_over_100_documents_are_handled_whole(service):
    _, port = service
    status, answer = post(port, '/exists', {'data': [{'id': f'id{i}'} for i in range(150)]})
    assert status == 200 and [d['id'] for d in answer['data']] == [f'id{i}' for i in range(150)]
    status, answer = post(port, '/search', {'data': [{'text': 'x'} for i in range(600)]})
    assert status == 400 and '600 documents in one /search request; at most 512' in answer['error']


@pytest.mark.parametrize('body, message', [
    ({'data': [{'text': 'a dog'}], 'parameters': {'limit': 0}}, 'limit'),
    ({'data': [{'text': '   '}]}, 'empty query'),
    ({'data': [{'blob': b64(b'not an image')}]}, 'image'),
    ({'data': [{'blob': 'not base64!'}]}, 'base64'),
    ({'data': 'abc'}, 'list'),
])
def test_http_client_mistakes_are_4xx_with_the_message(service, body, message):
    _, port = service
    status, answer = post(port, '/search', body)
    assert 400 <= status < 500 and message in answer['error']
    assert 'Traceback' not in json.dumps(answer)
    status, answer = post(port, '/search', b'{not json', raw=True,
                          headers={'Content-Type': 'application/json', 'x-api-key': KEY})
    assert status == 400 and 'JSON' in answer['error']


def test_cross_site_and_untyped_posts_are_refused_and_change_nothing(service):
    grpc_port, port = service
    picture = jpeg_bytes(synthetic_image(seed=31))
    client = Loupe.connect(port=grpc_port, api_key=KEY)
    assert client.index([picture]).indexed
    indexed = content_id(picture)
    body = json.dumps({'data': [{'id': indexed}]}).encode()
    # What a page on another site can send without a preflight: a Blob body with no type.
    status, answer = post(port, '/delete', body, raw=True, headers={'x-api-key': KEY})
    assert status == 415 and 'application/json' in answer['error']
    status, answer = post(port, '/delete', body, raw=True, headers={
        'Content-Type': 'application/json', 'x-api-key': KEY, 'Origin': 'http://evil.example'})
    assert status == 403 and 'evil.example' in answer['error']
    assert client.exists([indexed]) == {indexed}
    status, _ = post(port, '/delete', body, raw=True, headers={
        'Content-Type': 'application/json', 'x-api-key': KEY,
        'Origin': f'http://127.0.0.1:{port}'})  # the gateway's own page
    assert status == 200 and client.exists([indexed]) == set()


def test_the_api_key_is_required_on_http_and_grpc_and_hides_versions(service):
    grpc_port, port = service
    assert get(port, '/')[0] == 200  # health check
    status, body = get(port, '/status')
    assert status == 401 and b'3.33' not in body and b'jina' not in body
    status, body = get(port, '/status', {'x-api-key': KEY})
    assert status == 200 and json.loads(body)['jina']
    status, _ = post(port, '/search', {'data': [{'text': 'a dog'}]},
                     headers={'Content-Type': 'application/json'})
    assert status == 401
    status, _ = post(port, '/search', {'data': [{'text': 'a dog'}]},
                     headers={'Content-Type': 'application/json', 'x-api-key': 'wrong'})
    assert status == 401
    with pytest.raises(LoupeError, match='API key'):
        Loupe.connect(port=grpc_port, api_key='wrong').search('a dog')
    saved = os.environ.pop(guard.ENV_API_KEY)
    try:
        with pytest.raises(LoupeError, match='API key'):
            Loupe.connect(port=grpc_port).search('a dog')
    finally:
        os.environ[guard.ENV_API_KEY] = saved
    assert isinstance(Loupe.connect(port=grpc_port, api_key=KEY).search('a dog'), list)
    assert isinstance(Loupe.connect(port=port, protocol='http', api_key=KEY).search('a dog'),
                      list)


def test_the_service_reads_only_allowed_sources(service, allowed_folder, web_server, tmp_path):
    grpc_port, port = service
    base, hits = web_server
    outside = tmp_path / 'outside.jpg'
    outside.write_bytes(jpeg_bytes(synthetic_image(seed=12)))
    hits.clear()
    uris = ['/etc/passwd', 'file:///etc/passwd', str(outside), str(allowed_folder / 'inside.jpg'),
            f'{base}/square.jpg', 'http://127.0.0.1:1/x.jpg']
    status, answer = post(port, '/index', {'data': [{'uri': u} for u in uris]})
    assert status == 200
    by_uri = {d['uri']: d for d in answer['data']}
    for uri in uris[:3] + uris[5:]:
        assert by_uri[uri]['status'] == STATUS_ERROR and 'not read' in by_uri[uri]['error']
    for uri in uris[3:5]:
        assert by_uri[uri]['status'] == STATUS_INDEXED
    assert by_uri[uris[3]]['id'] == content_id((allowed_folder / 'inside.jpg').read_bytes())
    assert hits == ['/square.jpg']  # the allowed URL only
    # gRPC: the same rules, and a query image by uri too
    client = Loupe.connect(port=grpc_port, api_key=KEY)
    (doc,) = client.post('/index', [ImageDoc(uri='/etc/passwd')])
    assert doc.status == STATUS_ERROR and 'not read' in doc.error
    (query,) = client.post('/search', [ImageDoc(uri=str(outside))])
    assert 'not read' in query.error and not query.matches


def test_a_slow_source_holds_up_only_its_own_request(service, silent_port):
    grpc_port, _ = service
    client = Loupe.connect(port=grpc_port, api_key=KEY)
    slow = [ImageDoc(uri=f'http://127.0.0.1:{silent_port}/{i}.jpg') for i in range(3)]
    answer = {}
    indexing = threading.Thread(target=lambda: answer.update(docs=client.post('/index', slow)))
    indexing.start()
    searched = []
    while indexing.is_alive() and len(searched) < 5:
        searched.append(client.search('a dog', limit=1))
    still_waiting = indexing.is_alive()
    indexing.join(60)
    assert still_waiting, 'searches did not complete while the slow index request was pending'
    assert all(d.status == STATUS_ERROR and 'not read within 3 s' in d.error
               for d in answer['docs'])


def _routes(grpc_port: int, parameters: dict) -> list:
    """The executors a text search visited: the response's routes (Jina's own record) that
    have an end (Jina also lists those it went around, without one)."""
    from jina.types.request.data import DataRequest

    from loupe.client import _query_doc
    from loupe.transport import GrpcGateway

    gateway = GrpcGateway('127.0.0.1', grpc_port, api_key=KEY)
    try:
        request = DataRequest()
        request.header.exec_endpoint = '/search'
        request.data.docs = DocList[ImageDoc]([_query_doc([(1.0, 'text', 'a red square')])])
        request.parameters = parameters
        response = gateway._stub.process_single_data(request, metadata=gateway._metadata,
                                                     timeout=120)
    finally:
        gateway.close()
    return [route.executor for route in response.routes if route.HasField('end_time')]


def test_a_search_goes_around_the_segmenter_and_an_idle_reranker(service):
    grpc_port, http_port = service
    picture = jpeg_bytes(synthetic_image(320, 240, seed=31))
    client = Loupe.connect(port=grpc_port, api_key=KEY)
    client.index([picture])
    # The serve flow's reranker is off by default: searches go around it unless they ask, and
    # always around the segmenter.
    assert 'reranker' not in _routes(grpc_port, {'limit': 3})
    assert 'reranker' not in _routes(grpc_port, {'rerank': False})
    assert _routes(grpc_port, {}) == ['gateway', 'encoder', 'indexer', 'ranker', 'storage']
    assert _routes(grpc_port, {'rerank': True}) == ['gateway', 'encoder', 'indexer', 'ranker',
                                                    'reranker', 'storage']
    # Asked for, reranking happens on both protocols; not asked for, results are first-stage.
    reranked, plain = client.search('a red square', rerank=True), client.search('a red square')
    assert reranked and all(SCORE_RERANK in r.scores for r in reranked)
    assert plain and not any(SCORE_RERANK in r.scores for r in plain)
    status, answer = post(http_port, '/search', {'data': [{'text': 'a red square'}],
                                                 'parameters': {'rerank': True}})
    assert status == 200 and answer['data'][0]['matches']
    assert all(SCORE_RERANK in m['scores'] for m in answer['data'][0]['matches'])
    status, answer = post(http_port, '/search', {'data': [{'text': 'a red square'}]})
    assert status == 200 and not any(SCORE_RERANK in m['scores']
                                     for m in answer['data'][0]['matches'])


BYPASS = {'segmenter': None, 'reranker': 'rerank'}


@pytest.mark.parametrize('parameters, reranks', [
    (None, False), ({'limit': 3}, False), ({'rerank': False}, False), ({'rerank': True}, True),
    ({'rerank': 'false'}, True),  # not a bool: the executors refuse it, and say why
])
def test_only_searches_that_ask_for_reranking_visit_the_reranker(parameters, reranks):
    import re

    from executors.gateway.gateway import skip_pattern

    def visited(bypass, endpoint='/search'):
        pattern = skip_pattern(bypass, endpoint, parameters)
        return [name for name in ('segmenter', 'encoder', 'indexer', 'ranker', 'reranker',
                                  'storage') if pattern is None or re.match(pattern, name)]

    assert visited(BYPASS) == ['encoder', 'indexer', 'ranker'] + ['reranker'] * reranks + \
        ['storage']
    assert visited({'segmenter': None}) == ['encoder', 'indexer', 'ranker', 'reranker', 'storage']
    assert len(visited(BYPASS, '/index')) == len(visited(None)) == 6


def test_the_flow_loader_fills_in_what_a_search_goes_around():
    from loupe.flows import flow_config

    def bypass(config):
        return (config.get('gateway') or {}).get('uses_with', {}).get('search_bypass')

    assert bypass(flow_config('query')) == {'reranker': 'rerank'}
    assert bypass(flow_config('serve')) == BYPASS
    assert bypass(flow_config('serve', executors={'reranker': {'rerank': True}})) == \
        {'segmenter': None}
    assert bypass(flow_config('index')) == {'segmenter': None}  # it answers no /search anyway
    mine = flow_config('serve', gateway={'search_bypass': None})  # the operator's word wins
    assert bypass(mine) is None


def test_executors_of_other_classes_under_those_names_are_never_bypassed(tmp_path):
    import yaml

    from loupe.flows import PROJECT_ROOT, flow_config

    flow = tmp_path / 'mine.yml'
    flow.write_text(yaml.safe_dump({
        'jtype': 'Flow', 'gateway': {'uses': str(PROJECT_ROOT / 'executors/gateway/config.yml')},
        'executors': [{'name': 'segmenter', 'uses': 'MySegmenter'},
                      {'name': 'reranker', 'uses': 'MyReranker'}]}))
    assert 'search_bypass' not in flow_config(str(flow))['gateway'].get('uses_with', {})
    # loupe's reranker with a setting it will refuse: routed as written, the flow says why
    bad = flow_config('query', executors={'reranker': {'no_such_setting': 1}})
    assert 'search_bypass' not in bad['gateway'].get('uses_with', {})
