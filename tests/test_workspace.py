"""One owner per workspace (an OS lock), its record, the per-user default, query arithmetic,
paths and tags kept by the root store."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import jpeg_bytes, synthetic_image
from loupe import workspace as ws
from loupe.errors import InvalidRequestError
from loupe.query import IMAGE, TEXT, combine, parse_terms
from loupe.paths import workspace_root
from loupe.store import ParentStore, build_record


def test_a_second_writer_is_refused_with_the_owner_named(tmp_path):
    with ws.held(tmp_path, 'loupe index photos') as lock:
        lock.serving('127.0.0.1', 5999)
        with pytest.raises(ws.WorkspaceBusyError) as refused:
            ws.WorkspaceLock(tmp_path, 'loupe serve')
        message = str(refused.value)
        assert f'pid {os.getpid()}' in message and 'loupe index photos' in message
        assert '--server 127.0.0.1:5999' in message
        assert ws.owner(tmp_path).pid == os.getpid()
    assert ws.owner(tmp_path) is None  # released: the next one gets it
    with ws.held(tmp_path, 'again'):
        pass


_HOLDER = textwrap.dedent('''
    import sys, time
    from loupe.workspace import WorkspaceLock
    lock = WorkspaceLock(sys.argv[1], 'holder')
    lock.serving('127.0.0.1', 1)
    print('held', flush=True)
    time.sleep(600)
''')


def test_the_lock_dies_with_its_owner_and_a_stale_record_is_ignored(tmp_path):
    holder = subprocess.Popen([sys.executable, '-c', _HOLDER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        found = ws.owner(tmp_path)
        assert (found.pid, found.command, found.address) == (holder.pid, 'holder', '127.0.0.1:1')
        with pytest.raises(ws.WorkspaceBusyError, match=f'pid {holder.pid}'):
            ws.WorkspaceLock(tmp_path, 'second')
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up: the record stays behind
        holder.wait(30)
    assert (tmp_path / ws.OWNER_NAME).exists()
    assert ws.owner(tmp_path) is None
    with ws.held(tmp_path, 'after the crash') as lock:
        assert ws.read_owner_record(tmp_path).command == 'after the crash'


def test_a_service_address_counts_only_while_it_listens(tmp_path):
    with socket.socket() as server, ws.held(tmp_path, 'loupe serve') as lock:
        server.bind(('127.0.0.1', 0))
        server.listen()
        port = server.getsockname()[1]
        assert ws.service_address(tmp_path) is None  # no address recorded yet
        lock.serving('127.0.0.1', port)
        assert ws.service_address(tmp_path) == f'127.0.0.1:{port}'
        server.close()
        assert ws.service_address(tmp_path) is None


def test_idle_clock_follows_the_last_command(tmp_path):
    started = time.time() - 100
    assert ws.idle_seconds(tmp_path, started) >= 100
    ws.touch_used(tmp_path)
    assert ws.idle_seconds(tmp_path, started) < 5


def test_default_workspace_is_per_user_not_the_current_folder(monkeypatch, tmp_path):
    monkeypatch.delenv('LOUPE_WORKSPACE', raising=False)
    monkeypatch.setenv('XDG_DATA_HOME', str(tmp_path / 'data'))
    monkeypatch.chdir(tmp_path)
    assert workspace_root() == tmp_path / 'data' / 'loupe'
    monkeypatch.delenv('XDG_DATA_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert workspace_root() == tmp_path / 'home' / '.local' / 'share' / 'loupe'
    monkeypatch.setenv('LOUPE_WORKSPACE', str(tmp_path / 'mine'))
    assert workspace_root() == tmp_path / 'mine'


def test_query_arithmetic_parses_terms_weights_and_images(tmp_path):
    picture = tmp_path / 'beach.jpg'
    picture.write_bytes(jpeg_bytes(synthetic_image()))
    assert parse_terms(['a', 'dog', '+', 'on the beach', '-', 'night']) == [
        (1.0, TEXT, 'a dog'), (1.0, TEXT, 'on the beach'), (-1.0, TEXT, 'night')]
    assert parse_terms(['dog', '+', '0.5*sand', '-', f'2*{picture}']) == [
        (1.0, TEXT, 'dog'), (0.5, TEXT, 'sand'), (-2.0, IMAGE, str(picture))]
    assert parse_terms(['image:x.png']) == [(1.0, IMAGE, 'x.png')]
    with pytest.raises(InvalidRequestError, match='ends with an operator'):
        parse_terms(['dog', '+'])


def test_combined_query_is_the_normalised_weighted_sum():
    x, y = np.eye(2, dtype=np.float32)
    np.testing.assert_allclose(combine([x, y], [1, 1]), [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    np.testing.assert_allclose(combine([x, y], [1, -1]), [2 ** -0.5, -(2 ** -0.5)], rtol=1e-6)
    with pytest.raises(InvalidRequestError, match='cancel'):
        combine([x, x], [1, -1])
    with pytest.raises(InvalidRequestError, match='positive'):
        combine([x], [-1])


def _record(seed: int, uri: str, tags: dict):
    return build_record(f'id{seed}', jpeg_bytes(synthetic_image(seed=seed)), uri=uri, tags=tags,
                        preview_size=64)


def test_store_keeps_every_path_and_merges_tags(tmp_path):
    store = ParentStore(tmp_path / 'db')
    store.put([_record(1, '/a/1.jpg', {'album': 'trip'})])
    store.put([_record(1, '/b/copy.jpg', {'year': '2024'})])  # the same picture again
    rec = store.get('id1')
    assert rec.uris == ['/a/1.jpg', '/b/copy.jpg'] and rec.uri == '/b/copy.jpg'
    assert rec.tags == {'album': 'trip', 'year': '2024'}
    assert store.find_uris(['/a/1.jpg', '/nowhere.jpg']) == {'/a/1.jpg': 'id1'}
    assert [r.id for r in store.find_under(['/b'])] == ['id1']
    assert store.find_under(['/c']) == []
    assert store.update({'id1': {'tags': {'x': 1}, 'untag': ['year'],
                                 'remove_uris': ['/b/copy.jpg'], 'add_uris': ['/c/moved.jpg']},
                         'missing': {'tags': {'x': 1}}}) == ['id1']
    rec = store.get('id1')
    assert rec.tags == {'album': 'trip', 'x': 1}
    assert rec.uris == ['/a/1.jpg', '/c/moved.jpg']
    store.close()


_IDLE = textwrap.dedent('''
    import sys, time
    from loupe.service import watch_idle
    watch_idle(sys.argv[1], minutes=0.02)  # 1.2 s without a command
    try:
        time.sleep(120)
    except KeyboardInterrupt:
        print('stopped when idle', flush=True)
''')


def test_a_service_without_commands_stops_itself(tmp_path):
    result = subprocess.run([sys.executable, '-c', _IDLE, str(tmp_path)], capture_output=True,
                            text=True, timeout=100)
    assert result.stdout.strip() == 'stopped when idle'
    assert 'no command for 0.02 min' in result.stderr
