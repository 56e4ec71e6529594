"""coco128 in a 3-shard, 2-replica service and in a plain one: the same answers; then a replica
and a shard killed while it serves (tiny models)."""
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loupe.client import Loupe
from loupe.constants import ENV_CLIP_MODEL, ENV_OWL_MODEL, ENV_WORKSPACE
from loupe.errors import InvalidRequestError, LoupeError
from loupe.shard import shard_of
from loupe.sources import to_doc

pytestmark = pytest.mark.slow  # a 3-shard, 2-replica service: ~20 processes to start

SHARDS, REPLICAS = 3, 2
TEXTS = ['a dog', 'a person riding a horse', 'a red car', 'food on a table', 'an elephant']
_READY = 'loupe serving'


@pytest.fixture(scope='module')
def env(tiny_clip, tiny_owlvit):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV_CLIP_MODEL, tiny_clip)
        patch.setenv(ENV_OWL_MODEL, tiny_owlvit)
        yield patch


# Chunk hits over the index size (128 x 10 chunks): every search is exhaustive, so the ANN is
# exact and the answers must be identical, scores included (loupe.shard_merge).
EXACT = {'chunk_limit': 2000}


def _answers(client, images):
    queries = [dict(text=t, limit=10) for t in TEXTS]
    queries += [dict(image=str(images[i]), limit=10) for i in (3, 50, 100)]
    queries += [dict(text='a dog', limit=10, filter={'half': 'b'}),
                dict(text='a cat', limit=5, rerank=True)]
    queries = [{**EXACT, **query} for query in queries]
    out = []
    for query in queries:
        results = client.search(**query)
        assert results and results.warning is None
        out.append([(r.id, r.score, r.highlight, r.highlight_source, r.uri, r.tags)
                    for r in results])
    return out


def _session(client, images):
    """Index coco128 (two halves, tagged), ask, delete ten and re-index five, ask again."""
    half = len(images) // 2
    first = client.index(images[:half], tags={'half': 'a'})
    second = client.index(images[half:], tags={'half': 'b'})
    assert not first.errors and not second.errors
    assert len(first.indexed) + len(second.indexed) == len(images)
    before = _answers(client, images)
    gone = [to_doc(str(p)).id for p in images[::13][:10]]
    assert sorted(client.delete(gone)) == sorted(gone)
    assert not client.exists(gone)
    again = client.index(images[::13][:5], tags={'half': 'a'})
    assert len(again.indexed) == 5
    after = _answers(client, images)
    found = {r[0] for answer in after for r in answer}
    assert found.isdisjoint(gone[5:])
    return before, after


@pytest.fixture(scope='module')
def plain(env, coco_images, tmp_path_factory):
    env.setenv(ENV_WORKSPACE, str(tmp_path_factory.mktemp('plain')))
    with Loupe.local('serve') as client:
        return _session(client, coco_images)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Service:
    """``loupe serve --shards --replicas`` in a subprocess; Jina's log names each process's PID
    (``indexer/shard-1/rep-0@PID``)."""

    def __init__(self, workspace: Path):
        self.port = _free_port()
        self.workspace = workspace
        self.lines = []
        env = {**os.environ, ENV_WORKSPACE: str(workspace), 'COLUMNS': '1000',
               'JINA_LOG_LEVEL': 'INFO'}
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'loupe.cli', 'serve', '--no-http', '--port', str(self.port),
             '--shards', str(SHARDS), '--replicas', str(REPLICAS)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)
            if _READY in line:
                self.ready.set()

    def pid(self, name: str) -> int:
        found = re.findall(re.escape(name) + r'@(\d+)', ''.join(self.lines))
        assert found, f'no process {name} in the log'
        return int(found[0])

    def close(self):
        # The service runs in a session of its own (see loupe.cli.cmd_serve): end that group.
        children = Path(f'/proc/{self.process.pid}/task/{self.process.pid}/children')
        session = [int(p) for p in children.read_text().split()] if children.exists() else []
        for pid in session:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(60)


@pytest.fixture(scope='module')
def service(env, tmp_path_factory):
    service = Service(tmp_path_factory.mktemp('sharded'))
    try:
        assert service.ready.wait(900), ''.join(service.lines[-30:])
        yield service
    finally:
        service.close()


@pytest.fixture(scope='module')
def sharded(service, coco_images):
    return _session(Loupe.connect(port=service.port), coco_images)


def test_sharded_service_answers_exactly_as_one_index(plain, sharded):
    for label, want, got in zip(('after indexing', 'after delete and re-index'), plain, sharded):
        for query, (w, g) in enumerate(zip(want, got)):
            assert g == w, f'{label}, query {query}'


def test_a_workspace_refuses_another_shard_count(service, sharded):
    result = subprocess.run(
        [sys.executable, '-m', 'loupe.cli', '--workspace', str(service.workspace), 'serve',
         '--shards', '2', '--port', str(_free_port()), '--no-http'], text=True,
        capture_output=True, timeout=300)
    assert result.returncode != 0
    assert 'made with 3 shards, opened with 2' in result.stderr
    assert 'loupe reshard --to 2' in result.stderr


def test_explore_is_refused_clearly_with_shards(service, sharded):
    """/recommend, /duplicates and /map read the whole collection in one process: a sharded
    service says so rather than answering from a part of it (README)."""
    client = Loupe.connect(port=service.port)
    liked = client.search('a dog', limit=1)[0].id
    for call in (lambda: client.recommend([liked]), lambda: client.duplicates(),
                 lambda: client.map_points(query='a dog')):
        with pytest.raises(InvalidRequestError, match=r'not available on a workspace served '
                                                      r'with 3 shards.*reshard --to 1'):
            call()
    assert client.search('a dog', limit=3)  # and the service goes on serving


def test_killing_an_encoder_replica_the_other_keeps_answering(service, sharded):
    client = Loupe.connect(port=service.port)
    latencies, errors = {'before': [], 'after': []}, {'before': 0, 'after': 0}
    phase = 'before'
    for i in range(60):  # bounded: 60 requests
        if i == 20:
            os.kill(service.pid('encoder/rep-1'), signal.SIGKILL)
            phase = 'after'
        start = time.perf_counter()
        try:
            client.search(TEXTS[i % len(TEXTS)], limit=5)
            latencies[phase].append(time.perf_counter() - start)
        except LoupeError:
            errors[phase] += 1
    p50 = {k: statistics.median(v) * 1000 for k, v in latencies.items()}
    print(f'\nencoder replica killed: errors before {errors["before"]}/20, after '
          f'{errors["after"]}/40; p50 {p50["before"]:.1f} ms before, {p50["after"]:.1f} ms '
          f'after; load average {os.getloadavg()[0]:.1f}')
    assert errors['before'] == 0
    assert errors['after'] <= 2  # at most the requests in flight on the killed replica
    assert len(latencies['after'][-20:]) == 20  # and then every request is answered


def test_a_dead_shard_search_answers_from_the_others_index_fails_its_images(
        service, sharded, coco_images, tmp_path):
    os.kill(service.pid('indexer/shard-1/rep-0'), signal.SIGKILL)
    client = Loupe.connect(port=service.port)
    results = client.search('a dog', limit=20)
    assert 'indexer: shard 1 of 3 did not answer' in results.warning
    assert results and all(shard_of(r.id, SHARDS) != 1 for r in results)

    from conftest import jpeg_bytes, synthetic_image

    pictures = []
    for seed in range(12):
        path = tmp_path / f'new-{seed}.jpg'
        path.write_bytes(jpeg_bytes(synthetic_image(seed=100 + seed)))
        pictures.append(path)
    report = client.index(pictures)
    owners = {str(p): shard_of(to_doc(str(p)).id, SHARDS) for p in pictures}
    failed = {problem.source: problem.reason for problem in report.errors}
    assert set(failed) == {p for p, owner in owners.items() if owner == 1}
    assert failed and all('shard 1 of 3' in reason for reason in failed.values())
    assert set(report.indexed) == {p for p, owner in owners.items() if owner != 1}
