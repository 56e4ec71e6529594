"""Every image's write is all-or-nothing: what cannot be stored is reported per item, the rest is
stored, and no half-written image (chunks without a parent) ever takes a search result's slot.
"""
import contextlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import environment, jpeg_bytes, synthetic_image
from loupe.store import ParentStore, build_record


def record(i: int, id_=None):
    return build_record(id_ or f'id{i}', jpeg_bytes(synthetic_image(96, 64, seed=i)),
                        uri=f'/p/{i}.jpg', preview_size=64)


def test_a_record_that_cannot_be_written_is_reported_and_the_others_are_stored(tmp_path):
    store = ParentStore(tmp_path / 'store')
    try:
        failed = store.put([record(1), record(2, id_='x' * 600), record(3)])
        assert set(failed) == {'x' * 600} and 'not stored' in failed['x' * 600]
        assert set(store.get_many(['id1', 'id3', 'x' * 600])) == {'id1', 'id3'}
    finally:
        store.close()


@contextlib.contextmanager
def small_disk(path: Path, size: str = '2m'):
    """A tmpfs of ``size`` at ``path`` (needs root: skips with the reason otherwise)."""
    if os.geteuid() != 0:
        pytest.skip('a full disk is simulated with a small tmpfs, which needs root')
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f'cannot mount a tmpfs here: {mounted.stderr.strip()}')
    try:
        yield path
    finally:
        subprocess.run(['umount', '-l', str(path)], check=False)


def fill(path: Path) -> None:
    """Leave no free byte on the file system holding ``path``."""
    with open(path / f'ballast-{uuid.uuid4().hex}', 'wb', buffering=0) as f:  # unbuffered:
        with contextlib.suppress(OSError):  # nothing left to flush when the file closes
            while True:
                f.write(b'\0' * 65536)


def test_a_full_disk_fails_writes_per_item_and_reads_go_on(tmp_path):
    with small_disk(tmp_path / 'disk') as disk:
        store = ParentStore(disk / 'store')
        assert store.put([record(i) for i in range(3)]) == {}
        fill(disk)
        failed = store.put([record(i) for i in range(3, 6)])
        assert set(failed) == {'id3', 'id4', 'id5'}
        assert all('No space left on device' in reason for reason in failed.values())
        assert set(store.get_many([f'id{i}' for i in range(6)])) == {'id0', 'id1', 'id2'}
        store.close()
        reopened = ParentStore(disk / 'store')  # a restart while still full
        try:
            assert len(reopened) == 3 and reopened.get('id1').width == 96
        finally:
            reopened.close()


# --- through the service -------------------------------------------------------------------

@pytest.fixture(scope='module')
def models_env(tiny_clip, tiny_owlvit, tiny_detector, tiny_dino):
    from loupe.constants import ENV_CLIP_MODEL, ENV_DETECTOR_MODEL, ENV_DINO_MODEL, ENV_OWL_MODEL

    return {ENV_CLIP_MODEL: tiny_clip, ENV_OWL_MODEL: tiny_owlvit,
            ENV_DETECTOR_MODEL: tiny_detector, ENV_DINO_MODEL: tiny_dino}


def photos(n: int, seed: int = 0) -> list:
    return [jpeg_bytes(synthetic_image(160, 120, seed=seed + i)) for i in range(n)]


def ids_of(pictures) -> list:
    from loupe.sources import content_id

    return [content_id(p) for p in pictures]


def assert_consistent(client, ids) -> set:
    """Every image the service calls indexed is found, and nothing else takes a result's slot:
    a search as deep as the collection returns exactly the indexed images, each with its
    stored size; ``limit=1`` returns one when any is indexed."""
    indexed = client.exists(ids)
    found = client.search('a photo', limit=100)
    assert {r.id for r in found} == indexed
    assert all(r.width and r.height for r in found)
    assert len(client.search('a photo', limit=1)) == min(1, len(indexed))
    return indexed


@pytest.mark.parametrize('flow', ['serve', 'index'])
def test_bad_items_leave_nothing_half_written(models_env, tmp_path, flow):
    from loupe.client import Loupe
    from loupe.constants import ENV_WORKSPACE, STATUS_ERROR, STATUS_INDEXED
    from loupe.schema import ImageDoc

    good = photos(3, seed=40)
    with environment({**models_env, ENV_WORKSPACE: str(tmp_path / 'ws')}):
        with Loupe.local(flow) as client:
            docs = [ImageDoc(id=i, blob=p) for i, p in zip(ids_of(good), good)]
            docs.insert(1, ImageDoc(id='x' * 600, blob=photos(1, seed=50)[0]))  # MDB_BAD_VALSIZE
            answer = {d.id: d for d in client.post('/index', docs)}
            assert [answer[i].status for i in ids_of(good)] == [STATUS_INDEXED] * 3
            assert answer['x' * 600].status == STATUS_ERROR and 'id' in answer['x' * 600].error
        with Loupe.local('serve' if flow == 'serve' else 'query') as client:
            assert assert_consistent(client, [*ids_of(good), 'x' * 600]) == set(ids_of(good))


def test_a_full_disk_under_the_root_store_fails_items_and_undoes_their_chunks(models_env, tmp_path):
    from loupe.client import Loupe
    from loupe.constants import ENV_WORKSPACE
    from loupe.paths import STORAGE_NAME

    workspace = tmp_path / 'ws'
    first, second = photos(3, seed=70), photos(3, seed=80)
    with small_disk(workspace / STORAGE_NAME, size='4m') as disk, \
            environment({**models_env, ENV_WORKSPACE: str(workspace)}):
        with Loupe.local('serve') as client:
            assert len(client.index(first).indexed) == 3
            fill(disk)
            report = client.index(second)
            assert not report.indexed and len(report.errors) == 3
            assert all('No space left on device' in p.reason for p in report.errors)
            assert assert_consistent(client, ids_of(first + second)) == set(ids_of(first))
        with Loupe.local('serve') as client:  # a restart while still full: searches work
            assert assert_consistent(client, ids_of(first + second)) == set(ids_of(first))


def stored(workspace: Path) -> int:
    """Images in the root store of ``workspace`` (read while another process writes)."""
    from loupe.paths import STORAGE_NAME, STORE_DIR

    try:
        store = ParentStore(workspace / STORAGE_NAME / STORE_DIR, readonly=True)
    except Exception:  # not created yet
        return 0
    try:
        return len(store)
    finally:
        store.close()


def test_an_index_run_killed_at_random_points_leaves_no_visible_half_image(models_env, tmp_path):
    """The in-process ``loupe index`` is SIGKILLed (with its whole process group, as a closed
    terminal or an OOM kill would end it) at random points after it starts indexing; after
    each kill the workspace is consistent, and a last run completes it."""
    import random
    import signal
    import sys
    import time

    from loupe.client import Loupe
    from loupe.constants import ENV_WORKSPACE

    folder = tmp_path / 'photos'
    folder.mkdir()
    pictures = photos(24, seed=100)
    for i, picture in enumerate(pictures):
        (folder / f'{i:02d}.jpg').write_bytes(picture)
    workspace = tmp_path / 'ws'
    env = {**os.environ, **models_env, ENV_WORKSPACE: str(workspace)}
    rng = random.Random(7)  # the kill points are the same every run
    command = [sys.executable, '-m', 'loupe.cli', 'index', str(folder), '--batch-size', '2']
    for _ in range(2):
        run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and run.poll() is None and stored(workspace) < 2:
            time.sleep(0.2)  # until it is indexing
        time.sleep(rng.uniform(0.0, 3.0))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        run.wait(60)
        time.sleep(1)  # the group's processes are gone before the workspace is opened again
        with environment({**models_env, ENV_WORKSPACE: str(workspace)}):
            with Loupe.local('query') as client:
                assert_consistent(client, ids_of(pictures))
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    with environment({**models_env, ENV_WORKSPACE: str(workspace)}):
        with Loupe.local('query') as client:
            assert assert_consistent(client, ids_of(pictures)) == set(ids_of(pictures))
