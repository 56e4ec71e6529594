"""loupe installs like a library: the wheel carries the flows and the executors' configs, and
``loupe index`` + ``loupe search`` work from a fresh virtualenv, run from another folder."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

from loupe.constants import ENV_CLIP_MODEL, ENV_DETECTOR_MODEL, ENV_DINO_MODEL, ENV_OWL_MODEL

ROOT = Path(__file__).resolve().parents[1]
EXECUTORS = sorted(d.name for d in (ROOT / 'executors').iterdir() if (d / 'config.yml').is_file())


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('dist')
    build = tmp_path_factory.mktemp('build')
    # A copy of the tracked tree: a build in place would leave build/ and *.egg-info behind.
    files = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (build / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, build / name)
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '--no-index', '-q', '-w', str(out), str(build)], check=True, timeout=600)
    (path,) = out.glob('loupe-*.whl')
    return path


def test_the_wheel_carries_the_flows_and_the_executors(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for flow in ('index.yml', 'query.yml'):
        assert f'loupe/resources/flows/{flow}' in names
    for executor in EXECUTORS:
        config = yaml.safe_load((ROOT / 'executors' / executor / 'config.yml').read_text())
        for name in ('config.yml', *config['py_modules']):
            assert f'loupe/resources/executors/{executor}/{name}' in names


def _run(python_env: Path, *args, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(python_env / 'bin' / 'loupe'), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_index_and_search_from_a_fresh_virtualenv(wheel, tmp_path, photo_paths, tiny_clip,
                                                  tiny_owlvit, tiny_detector, tiny_dino):
    target = tmp_path / 'venv'
    venv.create(target, with_pip=False)
    version = f'python{sys.version_info.major}.{sys.version_info.minor}'
    site = target / 'lib' / version / 'site-packages'
    # loupe's dependencies are this environment's (offline, and quick); loupe is the wheel's
    # only: a path listed in a .pth file is not a site folder, so the editable install of the
    # repository there stays inactive.
    (site / 'dependencies.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    subprocess.run([sys.executable, '-m', 'pip', '--python', str(target / 'bin' / 'python'),
                    'install', '--no-deps', '--no-index', '-q', str(wheel)], check=True,
                   timeout=600)
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'LOUPE_FLOWS')}
    env.update({ENV_CLIP_MODEL: tiny_clip, ENV_OWL_MODEL: tiny_owlvit,
                ENV_DETECTOR_MODEL: tiny_detector, ENV_DINO_MODEL: tiny_dino,
                'COLUMNS': '1000'})
    where = subprocess.run(
        [str(target / 'bin' / 'python'), '-c',
         'import loupe, loupe.flows; print(loupe.__file__); print(loupe.flows.PROJECT_ROOT)'],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(target) for p in where), where  # not the repository's
    photos = elsewhere / 'photos'
    photos.mkdir()
    for path in photo_paths[:4]:
        shutil.copy(path, photos / path.name)
    workspace = tmp_path / 'workspace'
    indexed = _run(target, '--workspace', str(workspace), 'index', 'photos', '--quiet',
                   cwd=elsewhere, env=env)
    assert indexed.returncode == 0, indexed.stderr
    assert 'indexed 4 images' in indexed.stdout
    searched = _run(target, '--workspace', str(workspace), 'search', 'a photo', '--json',
                    '--limit', '3', cwd=elsewhere, env=env)
    assert searched.returncode == 0, searched.stderr
    results = json.loads(searched.stdout)
    assert len(results) == 3
    assert {Path(r['uri']).name for r in results} <= {p.name for p in photo_paths[:4]}
