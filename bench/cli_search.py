"""``loupe search "..."`` as a user runs it: a fresh process each time, cold and warm.

- cold: no service owns the workspace, so the command starts the query flow in-process (models
  loaded, index opened) and closes it again;
- warm: ``loupe serve --background`` owns the workspace, and the same plain command finds it
  through the workspace and sends the query there (JSON over its HTTP port, without importing
  jina or torch);
- encode: one text query through the CLIP text tower in a loaded model, the floor of any search.

Every figure is the wall time of a whole ``python -m loupe.cli search`` process; ``cpu_p50_s`` is
the CPU time that process and its children (an in-process flow's executors) used, which a busy
machine inflates less than wall time (the warm service's own work is not in it).
"""
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

NAME = 'cli_search'
COLUMNS = ['mode', 'runs', 'p50_s', 'min_s', 'max_s', 'vs_encode', 'cpu_p50_s']
QUERIES = ['a dog', 'a red bicycle', 'two people on a beach', 'a cat on a sofa', 'a bus',
           'a kite in the sky', 'a plate of food', 'a clock tower']


def _run(env, *args, cpu: list = None) -> float:
    """Wall seconds of one ``loupe`` process; its CPU seconds (and its children's, such as an
    in-process flow's executors) appended to ``cpu``: less sensitive to a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, '-m', 'loupe.cli', *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall


def _encode_seconds(clip: str, n: int) -> list:
    from loupe.clip import ClipEmbedder

    embedder = ClipEmbedder(clip)
    embedder.embed_texts(['warm up'])
    out = []
    for i in range(n):
        start = time.perf_counter()
        embedder.embed_texts([QUERIES[i % len(QUERIES)]])
        out.append(time.perf_counter() - start)
    return out


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--cold-runs', type=int, default=3)
    p.add_argument('--warm-runs', type=int, default=10)
    args = p.parse_args(argv)
    if args.smoke:
        args.cold_runs, args.warm_runs = 1, 2
    clip, owl = common.clip_model(args), common.owl_model(args)
    workspace = common.cache_dir(args, 'cli-search')
    env = {k: v for k, v in os.environ.items() if not k.startswith('LOUPE_')}
    env.update(LOUPE_CLIP_MODEL=clip, LOUPE_OWL_MODEL=owl, LOUPE_WORKSPACE=str(workspace))
    _run(env, 'index', *map(str, common.image_files(args, limit=8)), '--method', 'none')

    cold_cpu, warm_cpu = [], []
    cold = [_run(env, 'search', QUERIES[i % len(QUERIES)], cpu=cold_cpu)
            for i in range(args.cold_runs)]
    port, http_port = common.free_port(), common.free_port()
    _run(env, 'serve', '--background', '--port', str(port), '--http-port', str(http_port))
    try:
        _run(env, 'search', 'warm up')
        warm = [_run(env, 'search', QUERIES[i % len(QUERIES)], cpu=warm_cpu)
                for i in range(args.warm_runs)]
    finally:
        _run(env, 'stop')
    encode = _encode_seconds(clip, args.warm_runs)
    floor = common.percentile(encode, 50)
    rows = [{'mode': mode, 'runs': len(samples), 'p50_s': common.percentile(samples, 50),
             'min_s': min(samples), 'max_s': max(samples),
             'vs_encode': common.percentile(samples, 50) / floor,
             'cpu_p50_s': common.percentile(cpu, 50) if cpu else None}
            for mode, samples, cpu in (('cold (in-process flow)', cold, cold_cpu),
                                       ('warm (workspace service)', warm, warm_cpu),
                                       ('encode one text query', encode, None))]
    return common.finish(NAME, args, {'clip': clip, 'owl': owl, 'images': 8}, rows, COLUMNS)


if __name__ == '__main__':
    main()
