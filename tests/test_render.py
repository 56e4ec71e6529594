"""The result gallery: pictures and boxes on disk, the page's markup, and the page in Chromium."""
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import jpeg_bytes
from loupe.client import Result
from loupe.errors import ImageLoadError
from loupe.render import BOX_COLOUR, ORIGINAL, PREVIEW, load_picture, save_results

CHROMIUM = Path('/usr/bin/chromium')
MARKER = (250, 230, 60)
_ORIENTATION = 0x0112


def picture(size, background, box=None) -> Image.Image:
    """A uniform picture with a marker block filling ``box``: unambiguous pixels to look for."""
    img = Image.new('RGB', size, background)
    if box:
        img.paste(MARKER, [round(v) for v in box])
    return img


def rotated_file(path: Path, oriented: Image.Image) -> None:
    """Store ``oriented`` as sideways pixels plus EXIF orientation 6 (as phones do)."""
    exif = Image.Exif()
    exif[_ORIENTATION] = 6
    oriented.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif.tobytes())


def result(id_='r', uri=None, highlight=None, size=None, preview=None, **kwargs) -> Result:
    width, height = size or (None, None)
    return Result(id=id_, uri=uri, score=kwargs.pop('score', 0.5), highlight=highlight,
                  highlight_source=kwargs.pop('highlight_source', 'chunk'), width=width,
                  height=height, preview=preview, **kwargs)


def red_box(img: Image.Image, tolerance: int = 40):
    """Bounding box [x1, y1, x2, y2] of the box colour's pixels."""
    return colour_box(np.asarray(img.convert('RGB')), BOX_COLOUR, tolerance)


def colour_box(pixels: np.ndarray, colour, tolerance: int):
    mask = (np.abs(pixels[..., :3].astype(int) - colour) <= tolerance).all(axis=-1)
    ys, xs = np.nonzero(mask)
    assert xs.size, f'no pixels of colour {colour}'
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


class _Page(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.tags, self.references = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.references += [v for k, v in attrs if k in ('src', 'href')]


@pytest.mark.parametrize('original, preview_size, highlight, expected', [
    ((1600, 400), (400, 100), [400, 100, 800, 300], [100, 25, 200, 75]),  # wide
    ((900, 2700), (300, 900), [90, 1350, 450, 2700], [30, 450, 150, 900]),  # tall
])
def test_box_is_scaled_from_original_to_preview_pixels(original, preview_size, highlight,
                                                       expected):
    stored = jpeg_bytes(picture(preview_size, (40, 90, 200)))
    got = load_picture(result(highlight=highlight, size=original, preview=stored))
    assert got.source == PREVIEW and got.image.size == preview_size
    np.testing.assert_allclose(got.box, expected, atol=0.01)


def test_saved_jpeg_is_bounded_with_the_box_drawn_where_the_highlight_is(tmp_path):
    path = tmp_path / 'big.jpg'
    picture((3200, 1000), (128, 128, 128)).save(path)
    highlight = [800, 200, 2400, 700]
    save_results([result(uri=str(path), highlight=highlight, size=(3200, 1000))],
                 tmp_path / 'out', 'q')
    saved = Image.open(tmp_path / 'out' / '01.jpg')
    assert saved.size == (1600, 500)
    np.testing.assert_allclose(red_box(saved), [v / 2 for v in highlight], atol=2)
    pixels = np.asarray(saved)
    assert abs(int(pixels[225, 800, 0]) - 128) < 10  # inside the box: untouched
    thumb = Image.open(tmp_path / 'out' / 'thumbs' / '01.jpg')
    assert thumb.size == (640, 200)
    assert not (np.asarray(thumb)[..., 1] < 64).any()  # the page's thumbnail has no box drawn in


def test_exif_rotated_original_is_shown_upright_with_the_box_on_the_marker(tmp_path):
    highlight = [250, 40, 380, 200]  # upright pixels, as the index stores boxes
    rotated_file(tmp_path / 'phone.jpg', picture((400, 600), (230, 140, 30), highlight))
    item = result(uri=str(tmp_path / 'phone.jpg'), highlight=highlight, size=(400, 600))
    got = load_picture(item)
    assert got.source == ORIGINAL and got.image.size == (400, 600)
    assert np.abs(np.asarray(got.image)[120, 315].astype(int) - MARKER).max() < 20
    save_results([item], tmp_path / 'out', 'q')
    np.testing.assert_allclose(red_box(Image.open(tmp_path / 'out' / '01.jpg')), highlight,
                               atol=2)
    thumb = Image.open(tmp_path / 'out' / 'thumbs' / '01.jpg')
    assert thumb.size == (400, 600) and _ORIENTATION not in thumb.getexif()  # browsers won't turn it


def test_original_that_changed_since_indexing_falls_back_to_the_preview(tmp_path):
    path = tmp_path / 'edited.jpg'
    picture((500, 500), (0, 0, 0)).save(path)
    stored = jpeg_bytes(picture((500, 200), (40, 90, 200)))
    item = result(uri=str(path), highlight=[0, 0, 500, 200], size=(1000, 400), preview=stored)
    got = load_picture(item)
    assert got.source == PREVIEW
    np.testing.assert_allclose(got.box, [0, 0, 250, 100], atol=0.01)
    item.preview = None
    with pytest.raises(ImageLoadError, match='500x500 now, 1000x400 when indexed'):
        load_picture(item)


def test_results_without_image_get_a_card_saying_why(tmp_path):
    good = tmp_path / 'good.jpg'
    picture((300, 200), (40, 170, 90)).save(good)
    results = [
        result('gone', uri=str(tmp_path / 'gone.jpg')),
        result('remote', uri='https://example.com/a.jpg'),
        result('broken', preview=b'not a jpeg'),
        result('good', uri=str(good), highlight=[10, 10, 100, 100], size=(300, 200)),
    ]
    page = save_results(results, tmp_path / 'out', 'q')
    text = page.read_text()
    cards = text.split('<figure')[1:]
    assert len(cards) == 4
    assert 'no image' in cards[0] and 'No such file' in cards[0] and 'no stored preview' in cards[0]
    assert 'remote, not fetched' in cards[1]
    assert 'stored preview: not a readable image' in cards[2]
    assert 'no image' not in cards[3] and 'thumbs/04.jpg' in cards[3]
    assert sorted(p.name for p in (tmp_path / 'out').glob('*.jpg')) == ['04.jpg']


def test_all_text_is_escaped_and_the_page_only_references_files_beside_it(tmp_path):
    path = tmp_path / '<img src=x onerror=alert(1)>&"q".jpg'
    picture((300, 200), (40, 170, 90)).save(path, format='JPEG')
    evil = '<script>alert("x")</script>'
    results = [result(uri=str(path), highlight=[10, 10, 100, 100], size=(300, 200),
                      tags={'<b>k</b>': evil}, scores={evil: 0.5}, chunk_kind=evil),
               result('missing', uri=evil)]
    page = save_results(results, tmp_path / 'out', evil)
    text = page.read_text()
    parsed = _Page(text)
    assert 'script' not in parsed.tags and parsed.tags.count('img') == 1
    assert '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;' in text
    assert '&lt;img src=x onerror=alert(1)&gt;&amp;&quot;q&quot;.jpg' in text
    assert parsed.references == ['01.jpg', 'thumbs/01.jpg']
    for reference in parsed.references:
        assert (page.parent / reference).is_file()


def _screenshot(page: Path, out: Path, tmp_path: Path, size=(1400, 900)) -> np.ndarray:
    command = [str(CHROMIUM), '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
               '--no-first-run', '--disable-background-networking', '--disable-component-update',
               '--disable-sync', '--hide-scrollbars', '--force-device-scale-factor=1',
               f'--user-data-dir={tmp_path / "chromium-profile"}',
               f'--window-size={size[0]},{size[1]}', f'--screenshot={out}', page.as_uri()]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and out.is_file(), run.stderr[-2000:]
    return np.asarray(Image.open(out).convert('RGB'))


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason='needs headless Chromium at /usr/bin/chromium (apt-get install chromium)')
def test_boxes_land_on_the_highlight_in_a_real_browser(tmp_path):
    # (background colour, original size, highlight): wide original, tall result known only by
    # its stored preview (half size), and a phone photo stored sideways with EXIF orientation.
    wide = ((40, 90, 200), (1200, 400), [300, 100, 900, 300])
    tall = ((40, 170, 90), (800, 2000), [100, 1200, 500, 1800])
    phone = ((230, 140, 30), (400, 600), [250, 40, 380, 200])
    picture((1200, 400), wide[0], wide[2]).save(tmp_path / 'wide.jpg', quality=95)
    preview = picture((400, 1000), tall[0], [v / 2 for v in tall[2]])
    rotated_file(tmp_path / 'phone.jpg', picture(phone[1], phone[0], phone[2]))
    results = [result('wide', uri=str(tmp_path / 'wide.jpg'), highlight=wide[2], size=wide[1]),
               result('tall', uri='https://example.com/tall.jpg', highlight=tall[2],
                      size=tall[1], preview=jpeg_bytes(preview, quality=95),
                      highlight_source='reranker'),
               result('gone', uri=str(tmp_path / 'gone.jpg')),
               result('phone', uri=str(tmp_path / 'phone.jpg'), highlight=phone[2], size=phone[1])]
    page = save_results(results, tmp_path / 'gallery', 'boxes')
    shot = _screenshot(page, tmp_path / 'shot.png', tmp_path)

    for background, (width, height), (x1, y1, x2, y2) in (wide, tall, phone):
        left, top, right, bottom = colour_box(shot, background, 12)  # the rendered image
        shown_w, shown_h = right - left, bottom - top
        assert shown_w > 50 and shown_h > 50
        assert shown_w / shown_h == pytest.approx(width / height, rel=0.03)
        expected = [left + x1 / width * shown_w, top + y1 / height * shown_h,
                    left + x2 / width * shown_w, top + y2 / height * shown_h]
        region = shot[top - 3:bottom + 3, left - 3:right + 3]
        found = np.add(colour_box(region, BOX_COLOUR, 40), [left - 3, top - 3] * 2)
        np.testing.assert_allclose(found, expected, atol=3)
        centre = shot[round((expected[1] + expected[3]) / 2), round((expected[0] + expected[2]) / 2)]
        assert np.abs(centre.astype(int) - MARKER).max() < 20  # the box surrounds the marker
