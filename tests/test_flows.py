"""The YAML flows end to end with tiny models: index a folder, search it, restart, serve, CLI."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import environment, jpeg_bytes, synthetic_image
from loupe.boxes import as_boxes
from loupe import tiny_models
from loupe.client import Loupe
from loupe.constants import (ENV_CLIP_MODEL, ENV_DETECTOR_MODEL, ENV_DINO_MODEL, ENV_OWL_MODEL,
                             ENV_WORKSPACE, SOURCE_CHUNK, SOURCE_RERANKER)
from loupe.errors import LoupeError
from loupe.rerank import MIN_DETECTION_SCORE

N_PHOTOS = 12


@pytest.fixture(scope='module')
def env(tiny_clip, tiny_owlvit, tiny_detector, tiny_dino, tmp_path_factory):
    """Flows read models and the data folder from the environment, as a user would set it."""
    values = {ENV_CLIP_MODEL: tiny_clip, ENV_OWL_MODEL: tiny_owlvit,
              ENV_DETECTOR_MODEL: tiny_detector, ENV_DINO_MODEL: tiny_dino,
              ENV_WORKSPACE: str(tmp_path_factory.mktemp('workspace'))}
    with environment(values):
        yield values


@pytest.fixture(scope='module')
def photo_folder(photo_paths, tmp_path_factory) -> Path:
    """A folder with real photos in a sub-folder, a duplicate, and files that are not images."""
    folder = tmp_path_factory.mktemp('photos')
    (folder / 'trip').mkdir()
    for path in photo_paths[:N_PHOTOS]:
        shutil.copy(path, folder / 'trip' / path.name)
    shutil.copy(photo_paths[0], folder / 'copy-of-first.jpg')
    (folder / 'corrupt.jpg').write_bytes(b'not a jpeg')
    (folder / 'empty.png').write_bytes(b'')
    (folder / 'notes.txt').write_text('not an image, not crawled')
    return folder


@pytest.fixture(scope='module')
def web_server(tmp_path_factory):
    """A loopback HTTP server with one picture, to index by URL."""
    import functools
    import http.server
    import threading

    root = tmp_path_factory.mktemp('web')
    (root / 'square.jpg').write_bytes(jpeg_bytes(synthetic_image(seed=7)))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()


@pytest.fixture(scope='module')
def indexed(env, photo_folder, web_server):
    sources = [photo_folder, f'{web_server}/square.jpg', f'{web_server}/missing.jpg',
               str(photo_folder / 'no-such-file.jpg')]
    with Loupe.local('index') as client:
        report = client.index(sources, tags={'album': 'trip'}, batch_size=5)
        again = client.index([photo_folder])
    return report, again


def test_index_flow_reports_every_item(indexed, photo_folder, web_server):
    report, again = indexed
    assert len(report.indexed) == N_PHOTOS + 1  # the photos and the picture on the web
    assert f'{web_server}/square.jpg' in report.indexed
    reasons = {Path(p.source).name: p.reason for p in report.errors}
    assert set(reasons) == {'corrupt.jpg', 'empty.png', 'missing.jpg', 'no-such-file.jpg'}
    assert 'not a readable image' in reasons['corrupt.jpg']
    assert 'empty file' in reasons['empty.png']
    assert '404' in reasons['missing.jpg']
    assert 'no such file' in reasons['no-such-file.jpg']
    assert [p.reason for p in report.skipped] == [f'duplicate of {photo_folder}/copy-of-first.jpg']
    assert report.chunks >= (N_PHOTOS + 1) * 10  # whole image + a 3x3 grid each
    assert not again.indexed and len(again.skipped) == N_PHOTOS + 1  # a re-run skips them


@pytest.fixture(scope='module')
def query_client(indexed):
    with Loupe.local('query') as client:
        yield client


def test_text_search_returns_ranked_results_with_boxes_inside_the_image(query_client):
    results = query_client.search('a photo of a dog', limit=5)
    assert len(results) == 5
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    for r in results:
        assert (Path(r.uri).is_file() or r.uri.startswith('http')) and r.tags == {'album': 'trip'}
        x1, y1, x2, y2 = r.highlight
        assert 0 <= x1 < x2 <= r.width and 0 <= y1 < y2 <= r.height


def test_image_query_finds_its_own_source_first(query_client, photo_paths):
    for photo in (photo_paths[3], photo_paths[-1]):  # coco128's (where present) and synthetic
        results = query_client.search(image=str(photo), limit=3)
        assert Path(results[0].uri).name == photo.name


def test_rerank_replaces_highlight_with_detected_box(query_client):
    plain = query_client.search('a dog', limit=4)
    reranked = query_client.search('a dog', limit=4, rerank=True)
    assert {r.id for r in reranked} == {r.id for r in plain}
    assert all('rerank' in r.scores for r in reranked)
    first_stage = {r.id: r.highlight for r in plain}
    for r in reranked:  # a detection too weak (or a zero-area box) keeps the chunk's box
        if r.highlight_source == SOURCE_RERANKER:
            assert r.scores['rerank'] >= MIN_DETECTION_SCORE
        else:
            assert (r.highlight_source, r.highlight) == (SOURCE_CHUNK, first_stage[r.id])


def test_an_encoder_of_another_dimension_is_refused_and_the_index_survives(
        env, tmp_path, monkeypatch):
    # A workspace of its own: the module's is held by the query flow (one owner at a time).
    monkeypatch.setenv(ENV_WORKSPACE, str(tmp_path / 'workspace'))
    first, picture = (jpeg_bytes(synthetic_image(seed=s)) for s in (2, 3))
    with Loupe.local('index') as client:
        assert len(client.index([first]).indexed) == 1
    monkeypatch.setenv(ENV_CLIP_MODEL, tiny_models.build_clip(tmp_path / 'clip-8',
                                                               projection_dim=8))
    with Loupe.local('index') as client:
        with pytest.raises(LoupeError, match=r'(8.*16|16.*8).*new workspace.*index again'):
            client.index([picture])
    monkeypatch.setenv(ENV_CLIP_MODEL, env[ENV_CLIP_MODEL])
    with Loupe.local('serve') as client:
        assert len(client.search('a dog', limit=50)) == 1  # the index survived
        # Root storage (its own branch) kept the picture, but without chunks it is not
        # indexed: the next run indexes it instead of skipping it.
        report = client.index([picture])
    assert len(report.indexed) == 1 and not report.skipped


def test_filter_on_tags(query_client):
    assert len(query_client.search('a dog', filter={'album': 'trip'}, limit=3)) == 3
    assert query_client.search('a dog', filter={'album': 'other'}) == []


@pytest.mark.parametrize('kwargs, message', [
    ({'text': '   '}, 'empty query'),
    ({'text': 'dog', 'limit': 0}, 'limit'),
    ({'image': b'not an image'}, 'image'),
])
def test_bad_queries_are_clear_errors_and_the_service_goes_on(query_client, kwargs, message):
    with pytest.raises((LoupeError, ValueError), match=message):
        query_client.search(**kwargs)
    assert query_client.search('a dog', limit=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _cli(*args, check=True, **kwargs):
    return subprocess.run([sys.executable, '-m', 'loupe.cli', *args], capture_output=True,
                          text=True, check=check, timeout=600, **kwargs)


@pytest.fixture(scope='module')
def server(env, tmp_path_factory):
    """``loupe serve`` as a user starts it, on free loopback ports and a workspace of its own
    (the module's belongs to the in-process flows); ended by its PID."""
    grpc_port, http_port = _free_port(), _free_port()
    process = subprocess.Popen(
        [sys.executable, '-m', 'loupe.cli', '--workspace', str(tmp_path_factory.mktemp('served')),
         'serve', '--port', str(grpc_port), '--http-port', str(http_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    for line in process.stdout:
        if 'loupe serving' in line or time.monotonic() > deadline:
            break
    assert process.poll() is None, 'loupe serve exited'
    yield grpc_port, http_port
    process.send_signal(signal.SIGINT)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


def test_serve_with_a_bad_model_fails_fast_and_frees_its_ports(env, tmp_path):
    grpc_port, http_port = _free_port(), _free_port()
    (tmp_path / 'not-a-model').mkdir()  # a folder, so it is the executor that fails
    result = _cli('--workspace', str(tmp_path / 'ws'), 'serve', '--port', str(grpc_port),
                  '--http-port', str(http_port), check=False,
                  env={**os.environ, ENV_CLIP_MODEL: str(tmp_path / 'not-a-model'),
                       'COLUMNS': '1000'})  # Jina's log lines would wrap the path
    assert result.returncode != 0
    assert 'not-a-model' in result.stderr + result.stdout
    assert 'could not start' in result.stderr
    for port in (grpc_port, http_port):  # nothing left listening
        with socket.socket() as s:
            s.bind(('127.0.0.1', port))


def test_served_search_sees_images_indexed_after_start(server, tmp_path):
    grpc_port, http_port = server
    client = Loupe.connect(port=grpc_port)
    picture = tmp_path / 'new.jpg'
    picture.write_bytes(jpeg_bytes(synthetic_image(seed=42)))
    report = client.index([picture], tags={'album': 'new'})
    assert report.indexed == [str(picture)]
    results = client.search(image=str(picture), filter={'album': 'new'}, limit=1)
    assert [r.uri for r in results] == [str(picture)]

    import urllib.request

    body = json.dumps({'data': [{'text': 'a red square'}],
                       'parameters': {'limit': 1, 'filter': {'album': 'new'}}}).encode()
    request = urllib.request.Request(f'http://127.0.0.1:{http_port}/search', data=body,
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=60) as response:
        data = json.load(response)['data']
    match = data[0]['matches'][0]
    assert match['parent_id'] == match['id'] == report_id(client, picture)  # the image's id


def report_id(client, picture) -> str:
    from loupe.sources import to_doc

    return to_doc(str(picture)).id


def test_cli_end_to_end(env, photo_folder, tmp_path):
    workspace = tmp_path / 'cli-workspace'
    out = _cli('--workspace', str(workspace), 'index', str(photo_folder), '--quiet', check=False)
    assert out.returncode == 1  # some files failed
    assert f'indexed {N_PHOTOS} images' in out.stdout
    assert 'corrupt.jpg' in out.stderr
    searched = _cli('--workspace', str(workspace), 'search', 'dog', '--json', '--limit', '3',
                    '--save', str(tmp_path / 'results'))
    results = json.loads(searched.stdout)
    assert len(results) == 3
    assert {'id', 'uri', 'score', 'highlight'} <= set(results[0])
    assert len(as_boxes(results[0]['highlight'])) == 1
    assert (tmp_path / 'results' / 'index.html').is_file()
    assert (tmp_path / 'results' / '01.jpg').is_file()
    deleted = _cli('--workspace', str(workspace), 'delete', results[0]['uri'])
    assert 'deleted 1 of 1' in deleted.stdout
    after = json.loads(_cli('--workspace', str(workspace), 'search', 'dog', '--json',
                            '--limit', '50').stdout)
    assert results[0]['id'] not in {r['id'] for r in after}


@pytest.mark.parametrize('flow', ['index', 'serve'])
def test_both_topologies_refuse_a_bad_request_before_writing_and_report_bad_items(
        env, flow, tmp_path, monkeypatch):
    """The index flow (branches joined) and the service's chain fail alike: a request that is
    wrong as a whole is refused by the first executors it meets, before anything is written;
    an item that cannot be indexed is reported and the rest is indexed."""
    from loupe.sources import to_doc

    monkeypatch.setenv(ENV_WORKSPACE, str(tmp_path / 'workspace'))
    photo = jpeg_bytes(synthetic_image(seed=21))
    with Loupe.local(flow) as client:
        with pytest.raises(LoupeError, match=r'grid_rows must be an integer in \[1, 16\]'):
            client.index([photo], parameters={'grid_rows': 2.5})
        with pytest.raises(LoupeError, match='unknown parameter limit for /index'):
            client.index([photo], parameters={'limit': 3})
        assert client.exists([to_doc(photo).id]) == set()  # nothing of it was written
        report = client.index([photo, b'not an image'])
        assert len(report.indexed) == 1 and len(report.errors) == 1
        assert 'not a readable image' in report.errors[0].reason
        assert client.exists([to_doc(photo).id]) == {to_doc(photo).id}

