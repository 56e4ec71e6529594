"""Explore through the service flow with tiny models and real photos: duplicates (exact copies
under two names, edited copies), recommend, the map (and its page in headless Chromium),
paths, bad input, and the CLI against the running service."""
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from conftest import environment
from loupe.client import Loupe
from loupe.constants import ENV_CLIP_MODEL, ENV_OWL_MODEL, ENV_WORKSPACE
from loupe.errors import LoupeError
from loupe.explore.map_page import write_map
from loupe.sources import to_doc

CHROMIUM, CHROMEDRIVER = Path('/usr/bin/chromium'), Path('/usr/bin/chromedriver')
N_PHOTOS = 8
EDITS = {
    'half.jpg': lambda im: im.resize((im.width // 2, im.height // 2), Image.LANCZOS),
    'q30.jpg': lambda im: im,  # saved at quality 30 below
    'bright.jpg': lambda im: ImageEnhance.Brightness(im).enhance(1.15),
    'crop.jpg': lambda im: im.crop((round(im.width * .02), round(im.height * .02),
                                    round(im.width * .98), round(im.height * .98))),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def photos(coco_images, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('explore-photos')
    (folder / 'trip').mkdir()
    (folder / 'edits').mkdir()
    for path in coco_images[:N_PHOTOS]:
        shutil.copy(path, folder / 'trip' / path.name)
    shutil.copy(coco_images[0], folder / 'copy-of-first.jpg')
    original = Image.open(coco_images[1]).convert('RGB')
    for name, edit in EDITS.items():
        edit(original).save(folder / 'edits' / name, quality=30 if name == 'q30.jpg' else 90)
    return folder


@pytest.fixture(scope='module')
def service(tiny_clip, tiny_owlvit, tmp_path_factory):
    values = {ENV_CLIP_MODEL: tiny_clip, ENV_OWL_MODEL: tiny_owlvit,
              ENV_WORKSPACE: str(tmp_path_factory.mktemp('explore-workspace'))}
    port = _free_port()
    with environment(values), Loupe.local('serve', port=port) as client:
        yield client, port


@pytest.fixture(scope='module')
def indexed(service, photos, coco_images):
    client, port = service
    empty = {}
    for name, call in (('duplicates', lambda: client.duplicates()),
                       ('map', lambda: client.map_points())):
        with pytest.raises(LoupeError) as error:
            call()
        empty[name] = str(error.value)
    report = client.index([photos])
    assert not report.errors and len(report.indexed) == N_PHOTOS + len(EDITS)
    return client, port, empty


def test_an_empty_collection_is_a_clear_error(indexed):
    *_, empty = indexed
    assert all('collection is empty' in message for message in empty.values())


def test_exact_copies_under_two_names_list_both_paths(indexed, photos, coco_images):
    client, *_ = indexed
    groups = client.duplicates(method='exact')
    assert len(groups) == 1 and len(groups[0]) == 1
    (member,) = groups[0]
    assert member.id == to_doc(coco_images[0]).id
    assert sorted(member.uris) == sorted([str(photos / 'trip' / coco_images[0].name),
                                           str(photos / 'copy-of-first.jpg')])


def test_edited_copies_are_found_and_originals_never_merged(indexed, photos, coco_images):
    client, *_ = indexed
    groups = client.duplicates(method='perceptual')
    originals = {str(photos / 'trip' / p.name) for p in coco_images[:N_PHOTOS]}
    for group in groups:  # no group holds two different photos
        assert len(originals & {m.uri for m in group}) <= 1
    (group,) = [g for g in groups if any(m.uri and 'edits' in m.uri for m in g)]
    assert {Path(m.uri).name for m in group} == {coco_images[1].name, *EDITS}
    keep = group[0]
    # largest first (original, q30 and bright keep the full size), then oldest: the crawl
    # indexes edits/ before trip/, so edits/bright.jpg was stored first
    assert keep.uri == str(photos / 'edits' / 'bright.jpg')
    assert [Path(m.uri).name for m in group[-2:]] == ['crop.jpg', 'half.jpg']
    assert keep.similarity is None
    assert all(m.method == 'perceptual' and m.similarity >= 1 - 10 / 64 for m in group[1:])
    combined = client.duplicates(method='all', semantic_threshold=1.0)
    assert len(combined) >= len(groups)


def test_recommend_never_returns_votes_and_bad_input_is_a_clear_error(indexed, coco_images):
    client, *_ = indexed
    like, dislike = to_doc(coco_images[2]).id, to_doc(coco_images[3]).id
    rec = client.recommend([like], [dislike], limit=5, ask=3)
    assert rec.model == 'svm' and len(rec.results) == 5 and len(rec.ask) == 3
    returned = {r.id for r in rec.results + rec.ask}
    assert like not in returned and dislike not in returned
    assert all(r.uri and r.width for r in rec.results)
    with pytest.raises(LoupeError, match='unknown image ids in like: 0000'):
        client.recommend(['0000'])
    with pytest.raises(LoupeError, match="'like' is required"):
        client.recommend([])
    with pytest.raises(LoupeError, match='semantic_threshold must be a number in'):
        client.duplicates(semantic_threshold=2.0)
    with pytest.raises(LoupeError, match="method must be one of .*, got 'fuzzy'"):
        client.duplicates(method='fuzzy')
    assert client.search('a dog', limit=3)  # the service goes on serving


@pytest.mark.browser
@pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                    reason='needs headless Chromium and chromium-driver')
def test_the_map_page_loads_without_errors_with_one_thumbnail_per_image(indexed, tmp_path):
    client, *_ = indexed
    result = client.map_points(query='a dog', sample=6)
    assert len(result.points) == 6 and result.total >= 6
    assert all(p.thumbnail and 0 <= p.x <= 1 and p.similarity is not None for p in result.points)
    written = write_map(result.points, tmp_path / 'map', 'a dog', ['6 of the images'])
    assert Image.open(written['png']).size[0] > 100

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ('--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--no-first-run',
                 f'--user-data-dir={tmp_path / "profile"}'):
        options.add_argument(flag)
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get(written['html'].as_uri())
        loaded = driver.execute_script(
            "return [...document.querySelectorAll('img.thumb')]"
            ".map(i => i.complete && i.naturalWidth > 0)")
        links = driver.execute_script(
            "return [...document.querySelectorAll('#world a')].map(a => [a.href, a.title])")
        errors = [e for e in driver.get_log('browser') if e['level'] == 'SEVERE']
    finally:
        driver.quit()
    assert loaded == [True] * 6 and not errors
    assert sorted(title for _, title in links) == sorted(p.uri for p in result.points)
    assert all(href.startswith('file://') for href, _ in links)


def _cli(port, *args, stdin=None):
    run = subprocess.run([sys.executable, '-m', 'loupe.cli', '--server', f'127.0.0.1:{port}',
                          *args], capture_output=True, text=True, input=stdin,
                         timeout=300, cwd=Path(__file__).resolve().parents[1])
    return run


def test_cli_recommend_duplicates_and_map_against_the_service(indexed, photos, coco_images,
                                                              tmp_path):
    client, port, _ = indexed
    run = _cli(port, 'duplicates', '--method', 'perceptual', '--json')
    assert run.returncode == 0, run.stderr[-2000:]
    groups = json.loads(run.stdout)
    assert any(len(g) == 1 + len(EDITS) for g in groups)
    run = _cli(port, 'recommend', '--like', str(photos / 'trip' / coco_images[4].name),
               '--limit', '3', '--json')
    assert run.returncode == 0, run.stderr[-2000:]
    answer = json.loads(run.stdout)
    assert len(answer['results']) == 3 and answer['model'] == 'similarity'
    run = _cli(port, 'recommend', '--like', to_doc(coco_images[4]).id, '--interactive',
               '--limit', '4', stdin='y\nn\ns\nq\n')
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count('more like this?') == 4
    assert 'ranked by svm (2 liked, 1 disliked)' in run.stdout
    run = _cli(port, 'duplicates', '--threshold', '5')
    assert run.returncode == 2 and '--threshold needs --method' in run.stderr
    run = _cli(port, 'map', '--out', str(tmp_path / 'map'), '--sample', '4')
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'sample (seed 0) of 4 of' in run.stdout
    assert len(list((tmp_path / 'map' / 'thumbs').glob('*.jpg'))) == 4
