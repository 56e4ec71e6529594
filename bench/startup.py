"""Service start-up time of each flow, and how soon a newly indexed image can be found.

Start-up: from launching ``loupe serve --flow NAME`` to it printing that it serves (the flow's
executors all up, models loaded), next to a fresh Python process loading the same models and
stores directly (the work no service can skip). Searchable: against ``loupe serve``'s own flow
(loupe.flows.serve_topology, gRPC and HTTP), a loupe.client indexes a new photo with a unique tag, then
searches with a filter on that tag until the photo comes back; the time from ``index``
returning to that search returning, next to a plain search's latency on the same service.
"""
import io
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

NAME = 'startup'
# The table's columns: every row of the JSON has these keys (None where they do not apply).
COLUMNS = ['flow', 'startup_s', 'direct_load_s', 'startup_vs_direct', 'searchable_p50_ms',
           'searchable_max_ms', 'search_p50_ms', 'searchable_vs_search']
FLOWS = ('index', 'query', 'serve')
# What each flow's executors load; run in a fresh process as the direct baseline.
_DIRECT = '''
import sys, time
start = time.perf_counter()
from loupe.ann import ChunkIndex
from loupe.clip import ClipEmbedder
from loupe.segment import Partitioner
from loupe.store import ParentStore
ClipEmbedder(sys.argv[1]); ChunkIndex(sys.argv[3] + '/chunks'); ParentStore(sys.argv[3] + '/images')
Partitioner()
if sys.argv[2]:
    from loupe.rerank import Reranker
    Reranker(sys.argv[2])
print(time.perf_counter() - start)
'''


def direct_startup(clip: str, owl: str, workspace: Path) -> float:
    """Seconds for a fresh process to start and load the models and stores itself."""
    start = time.perf_counter()
    subprocess.run([sys.executable, '-c', _DIRECT, clip, owl, str(workspace)], check=True,
                   capture_output=True, cwd=common.PROJECT_ROOT, timeout=600)
    return time.perf_counter() - start


def new_photo(seed: int) -> bytes:
    """A JPEG nobody has indexed: a random texture."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format='JPEG', quality=90)
    return out.getvalue()


def searchable(service, trials: int, timeout: float = 30.0) -> dict:
    client = service.client()
    client.search('warm up', limit=10)
    plain = common.latencies(lambda i: client.search('a photo', limit=10), 10 * trials)
    delays, attempts = [], []
    for trial in range(trials):
        token = uuid.uuid4().hex
        report = client.index([new_photo(trial + int(time.time()))], tags={'probe': token})
        returned = time.perf_counter()
        assert report.indexed, report.errors
        for attempt in range(1, 10_000):
            if client.search('a photo', limit=10, filter={'probe': token}):
                break
            if time.perf_counter() - returned > timeout:
                raise TimeoutError(f'the new image was not searchable within {timeout} s')
        delays.append(time.perf_counter() - returned)
        attempts.append(attempt)
    return {'searchable': common.summary_ms(delays), 'search': common.summary_ms(plain),
            'attempts': attempts}


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--trials', type=int, help='new images indexed then searched (default 5)')
    p.add_argument('--flows', type=lambda s: s.split(','),
                   help=f'flows to start (default {",".join(FLOWS)}; serve is needed for '
                        'the searchable delay)')
    args = p.parse_args(argv)
    trials = args.trials or (1 if args.smoke else 5)
    flows = args.flows or (['serve'] if args.smoke else list(FLOWS))
    clip, owl = common.clip_model(args), common.owl_model(args)
    env = {'LOUPE_CLIP_MODEL': clip, 'LOUPE_OWL_MODEL': owl}
    rows, found = [], None
    root = common.cache_dir(args, 'startup-run')
    try:
        for flow in flows:
            workspace = root / flow
            shutil.rmtree(workspace, ignore_errors=True)
            workspace.mkdir(parents=True)
            direct = direct_startup(clip, owl if flow != 'index' else '', root / 'direct')
            with common.serve(flow, workspace, env=env, http=flow == 'serve') as service:
                if flow == 'serve':
                    found = searchable(service, trials)
            rows.append({'flow': flow, 'startup_s': service.startup_s, 'direct_load_s': direct,
                         'startup_vs_direct': service.startup_s / direct})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if found:
        s = found['searchable']
        rows.append({'flow': 'serve: index -> searchable', 'searchable_p50_ms': s['p50_ms'],
                     'searchable_max_ms': s['max_ms'],
                     'search_p50_ms': found['search']['p50_ms'],
                     'searchable_vs_search': s['p50_ms'] / found['search']['p50_ms']})
    notes = ['start-up: launch of `loupe serve --flow NAME` to "serving" (serve: gRPC + HTTP); '
             'direct: a fresh process importing loupe and loading the same models and stores',
             f'searchable: {trials} new images, each indexed then searched (filter on its tag) '
             'until found; target <= 1 s after index returns']
    return common.finish(NAME, args, {'clip_model': clip, 'owl_model': owl, 'trials': trials,
                                      'searchable_detail': found}, rows, COLUMNS, notes)


if __name__ == '__main__':
    main()
