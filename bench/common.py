"""What every benchmark shares: arguments, folders, timing, services, tables and JSON results.

Each benchmark is ``python bench/<name>.py [--smoke] [--json FILE]``: it prints a markdown table
and writes its figures as JSON (default ``bench/results/<name>.json``). ``--smoke`` runs tiny
sizes with tiny models, so CI keeps the scripts working; its figures mean nothing.
"""
import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

LOAD_AT_START = os.getloadavg()  # the machine's load before this benchmark added its own
PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = PROJECT_ROOT / 'bench' / 'results'
DEFAULT_WORK = PROJECT_ROOT / 'workspace'  # git-ignored: bench-models/, bench-cache/
COCO_IMAGES = PROJECT_ROOT.parent / 'shared' / 'data' / 'coco128' / 'images'
ENV_IMAGES = 'LOUPE_BENCH_IMAGES'

# Before jina or transformers are imported: loopback servers, no banners, no hub.
for _name, _value in (('JINA_DEFAULT_HOST', '127.0.0.1'), ('JINA_HIDE_SURVEY', '1'),
                      ('JINA_OPTOUT_TELEMETRY', '1'), ('HF_HUB_OFFLINE', '1'),
                      ('TRANSFORMERS_VERBOSITY', 'error'), ('HF_HUB_DISABLE_PROGRESS_BARS', '1'),
                      ('TOKENIZERS_PARALLELISM', 'false'), ('JINA_LOG_LEVEL', 'WARNING')):
    os.environ.setdefault(_name, _value)


def parser(name: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f'bench/{name}.py', description=description)
    p.add_argument('--smoke', action='store_true',
                   help='tiny sizes and tiny models: checks the script works, nothing more')
    p.add_argument('--json', type=Path, default=None,
                   help=f'where to write the results (default bench/results/{name}.json)')
    p.add_argument('--work', type=Path, default=DEFAULT_WORK,
                   help='folder for the cached models (bench-models/) and data (bench-cache/)')
    p.add_argument('--clip-model', help='CLIP checkpoint (default: full-size ViT-B/32, random)')
    p.add_argument('--owl-model', help='OWL-ViT checkpoint (default: full-size B/32 768, random)')
    p.add_argument('--images', type=Path, default=None,
                   help=f'folder of photos (default ${ENV_IMAGES} or coco128)')
    return p


def models_dir(args) -> Path:
    return Path(args.work) / 'bench-models'


def cache_dir(args, *parts: str) -> Path:
    path = Path(args.work).joinpath('bench-cache', *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def clip_model(args) -> str:
    from bench.models import checkpoint

    return args.clip_model or checkpoint('clip', args.smoke, models_dir(args))


def owl_model(args) -> str:
    from bench.models import checkpoint

    return args.owl_model or checkpoint('owl', args.smoke, models_dir(args))


def image_files(args, limit: Optional[int] = None) -> List[Path]:
    """The benchmark photos (coco128 by default), sorted; synthetic JPEGs where there are none."""
    folder = args.images or os.environ.get(ENV_IMAGES) or COCO_IMAGES
    files = sorted(p for p in Path(folder).rglob('*') if p.suffix.lower() in ('.jpg', '.jpeg'))
    if not files:
        files = _synthetic_jpegs(cache_dir(args, 'synthetic-photos'), limit or 8)
    return files[:limit] if limit else files


def _synthetic_jpegs(folder: Path, n: int) -> List[Path]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        path = folder / f'synthetic-{i:03d}.jpg'
        if not path.exists():
            pixels = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
        files.append(path)
    return files


# --- timing -------------------------------------------------------------------------------------

def timed(fn: Callable, *args, **kwargs):
    """(result, seconds)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def latencies(fn: Callable[[int], object], n: int, warmup: int = 2) -> List[float]:
    """Seconds of ``n`` calls ``fn(i)``, after ``warmup`` untimed ones."""
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return out


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    data = sorted(samples)
    if not data:
        return float('nan')
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summary_ms(samples: Sequence[float]) -> Dict[str, float]:
    """p50/p95/p99/mean/max in milliseconds of samples in seconds."""
    return {'p50_ms': percentile(samples, 50) * 1e3, 'p95_ms': percentile(samples, 95) * 1e3,
            'p99_ms': percentile(samples, 99) * 1e3,
            'mean_ms': statistics.fmean(samples) * 1e3 if samples else float('nan'),
            'max_ms': max(samples) * 1e3 if samples else float('nan'), 'n': len(samples)}


def rss_bytes(pid: str = 'self', field: str = 'VmRSS') -> int:
    """Resident set size of a process, from /proc; ``field='RssAnon'``: only its anonymous
    memory (not the pages of files it maps, which the OS drops under memory pressure)."""
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    return 0


def machine() -> dict:
    """What the figures were taken on, and how busy it was (load averages over 1, 5 and 15
    minutes, before the benchmark started and at its end, its own processes included)."""
    import torch

    cpu = platform.processor() or ''
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((line.split(':', 1)[1].strip() for line in f
                        if line.startswith('model name')), cpu)
    except OSError:
        pass
    try:
        with open('/proc/meminfo') as f:
            mem = int(f.readline().split()[1]) * 1024
    except OSError:
        mem = 0
    return {'cpu': cpu, 'cores': os.cpu_count(), 'memory_gib': round(mem / 2 ** 30, 1),
            'python': platform.python_version(), 'torch': torch.__version__,
            'torch_threads': torch.get_num_threads(), 'load_average_before': LOAD_AT_START,
            'load_average_after': os.getloadavg()}


# --- services -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Service:
    """``loupe serve`` in a child process of its own session, stopped by its PID."""

    def __init__(self, process: subprocess.Popen, port: int, startup_s: float, log: Path,
                 http_port: Optional[int] = None):
        self.process, self.port, self.startup_s, self.log = process, port, startup_s, log
        self.http_port = http_port

    def client(self):
        from loupe.client import Loupe

        return Loupe.connect(port=self.port)

    def stop(self, timeout: float = 60) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: the executors too
            self.process.wait(10)


@contextmanager
def serve(flow: str, workspace: Path, env: Optional[dict] = None, http: bool = False,
          timeout: float = 600) -> Iterator[Service]:
    """Start ``loupe serve --flow FLOW`` on a free loopback port; ``startup_s`` is the time from
    launching the process to the service saying it serves (the CLI prints once the flow is up)."""
    port = free_port()
    command = [sys.executable, '-m', 'loupe.cli', '--workspace', str(workspace), 'serve',
               '--flow', flow, '--host', '127.0.0.1', '--port', str(port)]
    http_port = free_port() if http else None
    command += ['--http-port', str(http_port)] if http else ['--no-http']
    log = Path(workspace) / f'serve-{Path(flow).stem}-{port}.log'
    log.parent.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, 'JINA_LOG_LEVEL': 'WARNING', **(env or {})}
    with open(log, 'w') as out:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=child_env,
                                   cwd=PROJECT_ROOT, start_new_session=True)
    service = Service(process, port, float('nan'), log, http_port)
    try:
        while True:
            if 'loupe serving' in log.read_text(errors='replace'):
                service.startup_s = time.perf_counter() - start
                break
            if process.poll() is not None:
                raise RuntimeError(f'loupe serve exited with {process.returncode}: '
                                   f'{log.read_text(errors="replace")[-3000:]}')
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f'loupe serve did not start within {timeout} s; see {log}')
            time.sleep(0.01)
        yield service
    finally:
        service.stop()
    log.unlink()  # kept only when something failed


def executor_settings(flow: str, name: str) -> dict:
    """Settings of executor ``name`` in the project's flow ``flow`` (loupe.flows.executor_settings),
    so a direct call runs as the flow would."""
    from dataclasses import asdict

    from loupe.flows import executor_settings as merged, flow_config

    return asdict(merged(flow_config(flow), name))


# --- output -------------------------------------------------------------------------------------

def fmt(value, digits: int = 3) -> str:
    if isinstance(value, float):
        if value != value:
            return '-'
        return f'{value:.{digits}g}' if abs(value) < 10 ** digits else f'{value:.0f}'
    return '-' if value is None else str(value)


def table(rows: List[dict], columns: Sequence[str]) -> str:
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '|'.join('---' for _ in columns) + '|']
    lines += ['| ' + ' | '.join(fmt(row.get(c)) for c in columns) + ' |' for row in rows]
    return '\n'.join(lines)


def finish(name: str, args, results: dict, rows: List[dict], columns: Sequence[str],
           notes: Sequence[str] = ()) -> dict:
    """Print the table, write the JSON (with the machine and the command) and return it."""
    rows = [{**{c: None for c in columns}, **row} for row in rows]
    results = {'benchmark': name, 'smoke': bool(args.smoke),
               'command': ' '.join(['python', f'bench/{name}.py', *sys.argv[1:]])
               if Path(sys.argv[0]).stem == name else f'python bench/{name}.py',
               'machine': machine(), **results, 'rows': rows}
    print(table(rows, columns))
    for note in notes:
        print(f'- {note}')
    path = Path(args.json) if args.json else RESULTS_DIR / f'{name}.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f'results written to {path}', file=sys.stderr)
    return results
