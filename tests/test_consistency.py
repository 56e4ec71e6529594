"""Every image's write is all-or-nothing: what cannot be stored is reported per item, the rest is
stored, and no half-written image (chunks without a parent) ever takes a search result's slot.
"""
import contextlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import jpeg_bytes, synthetic_image
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
    with open(path / f'ballast-{uuid.uuid4().hex}', 'wb') as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b'\0' * 65536)
                f.flush()


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
