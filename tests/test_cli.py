"""Daily use through the ``loupe`` command: one owner per workspace, commands routed to its
service, sync, tags, paths, query arithmetic, paging, quiet output and early argument checks."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import jpeg_bytes, synthetic_image
from loupe.client import Loupe
from loupe.constants import ENV_CLIP_MODEL, ENV_OWL_MODEL, ENV_WORKSPACE
from loupe.workspace import WorkspaceBusyError, owner


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _clean_env(**values) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith('LOUPE_')}
    return {**env, 'COLUMNS': '200', **values}


def _cli(env, *args, check=True, timeout=600):
    result = subprocess.run([sys.executable, '-m', 'loupe.cli', *args], capture_output=True,
                            text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f'loupe {" ".join(args)} exited {result.returncode}:\n'
                             f'{result.stdout}\n{result.stderr}')
    return result


@pytest.fixture(scope='module')
def service(tiny_clip, tiny_owlvit, tmp_path_factory):
    """``loupe serve --background`` on a workspace of its own; stopped with ``loupe stop``."""
    workspace = tmp_path_factory.mktemp('served')
    env = _clean_env(**{ENV_CLIP_MODEL: tiny_clip, ENV_OWL_MODEL: tiny_owlvit,
                        ENV_WORKSPACE: str(workspace)})
    port, http_port = _free_port(), _free_port()
    started = _cli(env, 'serve', '--background', '--port', str(port), '--http-port',
                   str(http_port), '--idle-timeout', '20')
    assert f'127.0.0.1:{port}' in started.stderr
    yield env, workspace, port
    _cli(env, 'stop', check=False)
    found = owner(workspace)
    if found is not None:  # only if stop failed: end what this fixture started
        os.kill(found.pid, 9)


def _photo(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(synthetic_image(seed=seed)))
    return path


def test_a_second_writer_beside_the_service_is_refused_naming_it(service, monkeypatch):
    env, workspace, port = service
    monkeypatch.setenv(ENV_WORKSPACE, str(workspace))
    with pytest.raises(WorkspaceBusyError, match=rf'loupe serve \(pid \d+.*127\.0\.0\.1:{port}'):
        with Loupe.local('index'):
            pass


def test_plain_cli_commands_go_to_the_running_service(service, tmp_path):
    env, workspace, port = service
    picture = _photo(tmp_path / 'new.jpg', seed=101)
    out = _cli(env, 'index', str(picture), '--tag', 'album=new')
    assert 'indexed 1 images' in out.stdout
    # The service itself sees it at once: the CLI did not start a flow of its own.
    found = Loupe.connect(f'127.0.0.1:{port}').search(image=str(picture), filter={'album': 'new'}, limit=1)
    assert [r.uri for r in found] == [str(picture)]
    status = _cli(env, 'status', '--json')  # global options work after the subcommand too
    assert json.loads(status.stdout)['service']['address'] == f'127.0.0.1:{port}'


def _search_json(env, *args):
    return json.loads(_cli(env, 'search', *args, '--json').stdout)


def test_tags_merge_and_change_without_reindexing(service, tmp_path):
    env, workspace, port = service
    picture = _photo(tmp_path / 'tagged.jpg', seed=102)
    _cli(env, 'index', str(picture), '--tag', 'album=a')
    again = _cli(env, 'index', str(picture), '--tag', 'year=2024')  # already indexed
    assert 'tags merged into 1' in again.stdout
    (hit,) = _search_json(env, 'x', '--filter', 'year=2024')
    assert hit['tags'] == {'album': 'a', 'year': '2024'} and hit['uri'] == str(picture)
    _cli(env, 'tag', str(picture), 'color=red', '--untag', 'album')
    (hit,) = _search_json(env, 'x', '--filter', 'color=red')
    assert hit['tags'] == {'year': '2024', 'color': 'red'}
    assert _search_json(env, 'x', '--filter', 'album=a') == []  # the chunk index follows too
    _cli(env, 'tag', hit['id'], 'by=id')  # by id works as well
    assert _search_json(env, 'x', '--filter', 'by=id')[0]['id'] == hit['id']


def test_delete_by_the_path_of_a_file_gone_since_and_say_what_was_not_deleted(service, tmp_path):
    env, workspace, port = service
    picture = _photo(tmp_path / 'gone.jpg', seed=103)
    _cli(env, 'index', str(picture), '--tag', 'doomed=1')
    picture.unlink()
    result = _cli(env, 'delete', str(picture), str(tmp_path / 'never.jpg'), check=False)
    assert result.returncode == 1
    assert 'deleted 1 of 2' in result.stdout
    assert f'not deleted: {tmp_path / "never.jpg"}: no such file' in result.stderr
    assert _search_json(env, 'x', '--filter', 'doomed=1') == []


def test_sync_follows_added_changed_moved_and_removed_files(service, tmp_path):
    env, workspace, port = service
    folder = tmp_path / 'library'
    a, b, c = (_photo(folder / f'{n}.jpg', seed=s) for n, s in (('a', 111), ('b', 112), ('c', 113)))
    first = _cli(env, 'sync', str(folder), '--tag', 'lib=1')
    assert 'added 3, changed 0, moved 0, removed 0' in first.stdout
    _photo(a, seed=114)  # edited in place
    moved = folder / 'sub' / 'b2.jpg'
    moved.parent.mkdir()
    b.rename(moved)
    c.unlink()
    d = _photo(folder / 'd.jpg', seed=115)
    second = _cli(env, 'index', '--sync', str(folder), '--tag', 'lib=1', '-v')
    assert 'added 1, changed 1, moved 1, removed 1 (images deleted 2), unchanged 0' \
        in second.stdout, second.stdout
    assert f'moved: {b} -> {moved}' in second.stderr
    hits = _search_json(env, 'x', '--filter', 'lib=1', '--limit', '20')
    assert sorted(h['uri'] for h in hits) == sorted(map(str, (a, moved, d)))
    third = _cli(env, 'sync', str(folder))
    assert 'added 0, changed 0, moved 0, removed 0 (images deleted 0), unchanged 3' in third.stdout


def test_paging_min_score_and_paths(service, tmp_path):
    env, workspace, port = service
    for seed in range(120, 126):
        _photo(tmp_path / 'page' / f'{seed}.jpg', seed=seed)
    _cli(env, 'index', str(tmp_path / 'page'), '--tag', 'page=1')
    top = _search_json(env, 'red square', '--filter', 'page=1', '--limit', '4')
    paths = _cli(env, 'search', 'red square', '--filter', 'page=1', '--limit', '2',
                 '--offset', '2', '--paths').stdout.split()
    assert paths == [r['uri'] for r in top[2:4]]
    threshold = top[1]['score']
    kept = _search_json(env, 'red square', '--filter', 'page=1', '--min-score', str(threshold))
    assert [r['id'] for r in kept] == [r['id'] for r in top[:2]]


def test_query_arithmetic_mixes_text_and_images(service, tmp_path):
    env, workspace, port = service
    picture = _photo(tmp_path / 'arith' / 'p.jpg', seed=130)
    _cli(env, 'index', str(picture.parent), '--tag', 'arith=1')
    client = Loupe.connect(port=port)
    expected = client.search(terms=[(1.0, 'text', 'a dog'), (-0.5, 'text', 'night'),
                                    (2.0, 'image', str(picture))], filter={'arith': '1'})
    got = _search_json(env, 'a dog', '-', '0.5*night', '+', f'2*{picture}',
                       '--filter', 'arith=1')
    assert [r['id'] for r in got] == [r.id for r in expected] and got[0]['uri'] == str(picture)
    assert got[0]['score'] == pytest.approx(expected[0].score, abs=1e-5)


def test_composite_query_embedding_is_the_weighted_sum_of_its_terms(tiny_clip):
    from docarray import DocList

    from executors.clip_encoder.executor import ClipEncoder
    from loupe.query import combine
    from loupe.schema import ImageDoc, Term

    encoder = ClipEncoder(model=tiny_clip)
    picture = jpeg_bytes(synthetic_image(seed=150))
    docs = DocList[ImageDoc]([
        ImageDoc(terms=[Term(text='a dog'), Term(text='night', weight=-0.5),
                        Term(blob=picture, weight=2.0)]),
        ImageDoc(text='a dog'), ImageDoc(text='night'), ImageDoc(blob=picture)])
    encoder.search(docs)
    composite, dog, night, image = (d.embedding for d in docs)
    expected = combine([dog, night, image], [1.0, -0.5, 2.0])
    assert abs(float(composite @ expected) - 1) < 1e-5


def test_no_results_names_the_workspace_and_its_size(service):
    env, workspace, port = service
    result = _cli(env, 'search', 'dog', '--filter', 'album=none-such')
    assert f'no results in workspace {workspace}' in result.stderr
    assert 'holds' in result.stderr and 'images' in result.stderr


def test_stop_frees_the_workspace(service):
    env, workspace, port = service
    stopped = _cli(env, 'stop')
    assert f'127.0.0.1:{port}' in stopped.stderr
    assert owner(workspace) is None
    assert json.loads(_cli(env, 'status', '--json').stdout)['service'] is None


def test_in_process_commands_are_quiet_and_fail_when_a_file_fails(tiny_clip, tiny_owlvit,
                                                                   tmp_path):
    env = _clean_env(**{ENV_CLIP_MODEL: tiny_clip, ENV_OWL_MODEL: tiny_owlvit})
    folder = tmp_path / 'photos'
    _photo(folder / 'ok.jpg', seed=140)
    (folder / 'empty.jpg').write_bytes(b'')
    (folder / 'broken.png').write_bytes(b'not a png')
    result = _cli(env, 'index', str(folder), '--workspace', str(tmp_path / 'ws'), check=False)
    assert result.returncode == 1
    assert 'indexed 1 images' in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert sorted(errors) == sorted([
        f'error: {folder / "broken.png"}: not a readable image (unknown or corrupt format)',
        f'error: {folder / "empty.jpg"}: empty file (0 bytes)'])
    assert (tmp_path / 'ws' / 'loupe.log').stat().st_size > 0  # the logs went there


@pytest.mark.parametrize('args, extra_env, message', [
    (['search', 'dog', '--limit', '0'], {}, '--limit: must be > 0'),
    (['index', 'x', '--method', 'foo'], {}, "invalid choice: 'foo'"),
    (['search', 'dog'], {ENV_CLIP_MODEL: '/no/such/clip'}, '/no/such/clip: no such folder'),
    (['search', 'dog'], {ENV_CLIP_MODEL: 'someone/no-such-clip', 'HF_HUB_OFFLINE': '1'},
     'the CLIP model someone/no-such-clip is not downloaded and HF_HUB_OFFLINE is set'),
])
def test_bad_arguments_and_missing_models_are_one_line_before_anything_starts(
        tiny_owlvit, tmp_path, args, extra_env, message):
    env = _clean_env(**{ENV_OWL_MODEL: tiny_owlvit, ENV_WORKSPACE: str(tmp_path),
                        **extra_env})
    result = _cli(env, *args, check=False, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / 'loupe.lock').exists()  # nothing started


def test_http_follows_the_grpc_port_unless_given():
    from loupe.cli import build_parser, default_http_port

    args = build_parser().parse_args(['serve', '--port', '6000'])
    assert args.http_port is None and default_http_port(args.port) == 6001
    assert default_http_port(65535) == 65534
    assert build_parser().parse_args(['serve', '--http-port', '7000']).http_port == 7000
