"""Parent storage: records survive restarts, the map grows, other processes read live."""
import io
import multiprocessing

import pytest
from docarray import DocList
from PIL import Image

from conftest import jpeg_bytes, synthetic_image
from executors.parent_storage.executor import ParentStorage
from loupe.constants import STATUS_DELETED, STATUS_ERROR, STATUS_INDEXED, STATUS_MISSING
from loupe.errors import ImageLoadError
from loupe.schema import ImageDoc, Match
from loupe.store import ParentStore, build_record


def record(i: int, size=(320, 240)):
    return build_record(f'id{i}', jpeg_bytes(synthetic_image(*size, seed=i)), uri=f'/p/{i}.jpg',
                        tags={'n': i}, preview_size=128)


def test_put_get_delete_and_restart(tmp_path):
    store = ParentStore(tmp_path / 'db')
    store.put([record(i) for i in range(5)])
    assert len(store) == 5 and 'id3' in store
    rec = store.get('id3')
    assert (rec.uri, rec.tags, rec.width, rec.height) == ('/p/3.jpg', {'n': 3}, 320, 240)
    assert store.delete(['id3', 'missing']) == ['id3']
    store.close()
    reopened = ParentStore(tmp_path / 'db')
    assert len(reopened) == 4 and reopened.get('id3') is None
    assert reopened.get('id4').tags == {'n': 4}


def test_preview_is_small_jpeg_of_the_image(tmp_path):
    rec = record(0, size=(1000, 500))
    preview = Image.open(io.BytesIO(rec.preview))
    assert preview.format == 'JPEG' and preview.size == (128, 64)
    assert (rec.width, rec.height) == (1000, 500)


def test_map_grows_instead_of_failing(tmp_path):
    store = ParentStore(tmp_path / 'db', map_size=64 * 1024)
    big = [record(i, size=(640, 480)) for i in range(20)]
    store.put(big)
    assert len(store) == 20


def _read_in_child(path, queue):
    reader = ParentStore(path, readonly=True)
    queue.put(sorted(r for r in ('id0', 'id1', 'id2') if r in reader))


def test_a_reader_in_another_process_sees_committed_writes(tmp_path):
    store = ParentStore(tmp_path / 'db')
    store.put([record(0), record(1)])
    queue = multiprocessing.get_context('spawn').Queue()
    child = multiprocessing.get_context('spawn').Process(target=_read_in_child,
                                                         args=(tmp_path / 'db', queue))
    child.start()
    child.join(60)
    assert queue.get(timeout=5) == ['id0', 'id1']


def test_readonly_store_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        ParentStore(tmp_path / 'nothing', readonly=True)


@pytest.fixture
def storage(tmp_path):
    executor = ParentStorage(preview_size=64, metas={'workspace': str(tmp_path)})
    yield executor
    executor.close()


def test_executor_indexes_good_items_and_reports_bad_ones(storage, tmp_path):
    good = ImageDoc(id='good', blob=jpeg_bytes(synthetic_image()), tags={'album': 'a'})
    docs = DocList[ImageDoc]([good, ImageDoc(id='corrupt', blob=b'garbage'),
                              ImageDoc(id='missing', uri=str(tmp_path / 'missing.jpg')),
                              ImageDoc(id='empty')])
    out = storage.index(docs)
    status = {d.id: (d.status, d.error) for d in out}
    assert status['good'] == (STATUS_INDEXED, None)
    for bad in ('corrupt', 'missing', 'empty'):
        assert status[bad][0] == STATUS_ERROR and status[bad][1]
    assert out[0].blob is None  # the bytes are not sent back
    assert (out[0].width, out[0].height) == (320, 240)
    assert 'good' in storage.store and 'corrupt' not in storage.store


@pytest.mark.parametrize('docs', [None, DocList[ImageDoc]()])
def test_executor_ignores_none_and_empty(storage, docs):
    stored = len(storage.store)
    for endpoint in (storage.index, storage.search, storage.delete, storage.exists):
        assert endpoint(docs) is docs
    assert len(storage.store) == stored


def test_executor_fills_matches_drops_deleted_and_deletes(storage):
    storage.index(DocList[ImageDoc]([ImageDoc(id=f'i{i}', uri=None, tags={'k': i},
                                              blob=jpeg_bytes(synthetic_image(seed=i)))
                                     for i in range(3)]))
    query = ImageDoc(text='q', matches=DocList[Match]([Match(parent_id=p, score=s)
                                                       for p, s in (('i2', .9), ('gone', .8),
                                                                    ('i0', .7))]))
    (out,) = storage.search(DocList[ImageDoc]([query]), parameters={'with_preview': True})
    assert [m.parent_id for m in out.matches] == ['i2', 'i0']
    assert out.matches[0].tags == {'k': 2} and out.matches[0].width == 320
    assert out.matches[0].preview.startswith(b'\xff\xd8')
    deleted = storage.delete(DocList[ImageDoc]([ImageDoc(id='i2'), ImageDoc(id='never')]))
    assert [d.status for d in deleted] == [STATUS_DELETED, None]
    exists = storage.exists(DocList[ImageDoc]([ImageDoc(id='i0'), ImageDoc(id='i2')]))
    assert [d.status for d in exists] == [STATUS_INDEXED, STATUS_MISSING]


def test_flow_stores_and_state_survives_restart(tmp_path):
    from jina import Flow

    def flow():
        return Flow(protocol='grpc', host='127.0.0.1').add(
            uses=ParentStorage, uses_metas={'workspace': str(tmp_path)})

    with flow() as f:
        f.post('/index', inputs=DocList[ImageDoc]([ImageDoc(id='x', blob=jpeg_bytes(
            synthetic_image()))]), return_type=DocList[ImageDoc])
    with flow() as f:
        out = f.post('/exists', inputs=DocList[ImageDoc]([ImageDoc(id='x'), ImageDoc(id='y')]),
                     return_type=DocList[ImageDoc])
    assert [d.status for d in out] == [STATUS_INDEXED, STATUS_MISSING]


def test_a_small_upright_jpeg_is_its_own_preview():
    data = jpeg_bytes(synthetic_image(320, 240))
    assert build_record('a', data, preview_size=1024).preview == data


@pytest.mark.parametrize('make', [
    lambda: _png(synthetic_image(320, 240)),  # not a JPEG
    lambda: jpeg_bytes(synthetic_image(320, 240).convert('CMYK')),  # odd colour mode
    lambda: jpeg_bytes(synthetic_image(320, 240), exif=_rotated_exif()),  # needs turning
], ids=['png', 'cmyk', 'exif-rotated'])
def test_other_images_get_an_upright_rgb_jpeg_preview(make):
    rec = build_record('a', make(), preview_size=1024)
    preview = Image.open(io.BytesIO(rec.preview))
    assert preview.format == 'JPEG' and preview.mode == 'RGB'
    assert preview.size == (rec.width, rec.height)


def test_a_truncated_jpeg_is_refused_even_when_it_would_be_its_own_preview():
    data = jpeg_bytes(synthetic_image(320, 240))
    with pytest.raises(ImageLoadError):
        build_record('a', data[:len(data) // 2], preview_size=1024)


def _png(img) -> bytes:
    out = io.BytesIO()
    img.save(out, format='PNG')
    return out.getvalue()


def _rotated_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: width and height swap
    return exif.tobytes()


def test_records_carry_a_perceptual_hash_and_when_first_stored(tmp_path):
    store = ParentStore(tmp_path / 'db', map_size=1 << 20)
    store.put([record(i) for i in range(30)])
    records = list(store.records())
    assert [r.id for r in records] == sorted(f'id{i}' for i in range(30))
    assert all(len(r.phash) == 16 and not r.preview for r in records)
    assert records[0].phash != records[1].phash
    first = store.get('id3').added
    store.put([record(3)])  # indexed again: still first stored then
    assert store.get('id3').added == first > 0
