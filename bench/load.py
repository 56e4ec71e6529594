"""A bounded load test of ``loupe serve``: concurrent clients, mixed search / index / delete,
over gRPC and HTTP at once.

Starts ``loupe serve`` (flows/serve.yml, both protocols), indexes a seed set of photos, then
runs ``--clients`` threads for ``--seconds``: half speak gRPC, half HTTP (loupe.client on each),
each doing text searches, index requests of a new photo (a random texture: a new image each
time) and deletes of the images it indexed, in the mix ``--mix``. Every call is timed and every
failure counted with its message. The service's resident memory (all its processes) is read
before the clients start and after they stop. Requests, errors and p50/p95/p99 per protocol and
operation are printed; nothing here is a pass/fail threshold.
"""
import io
import random
import shutil
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

NAME = 'load'
COLUMNS = ['protocol', 'operation', 'requests', 'errors', 'p50_ms', 'p95_ms', 'p99_ms',
           'max_ms']
OPERATIONS = ('search', 'index', 'delete')
QUERIES = ('a dog', 'a red bicycle', 'people on a beach', 'a cup of coffee', 'a street at night')


def new_photo(rng: random.Random) -> bytes:
    """A 320x240 JPEG nobody has indexed."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(rng.getrandbits(32)).integers(0, 255, (240, 320, 3),
                                                                 dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format='JPEG', quality=85)
    return out.getvalue()


def service_rss(root_pid: int) -> int:
    """Resident bytes of ``root_pid`` and every process below it (the flow's executors)."""
    import os

    children = defaultdict(list)
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(entry))
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        try:
            total += common.rss_bytes(str(pid))
        except OSError:  # it ended meanwhile
            pass
        todo.extend(children.get(pid, ()))
    return total


class Client(threading.Thread):
    """One simulated user: a loop of weighted random operations on one connection."""

    def __init__(self, number: int, protocol: str, port: int, mix, stop: threading.Event):
        super().__init__(daemon=True, name=f'client-{number}')
        from loupe.client import Loupe

        self.loupe = Loupe.connect(port=port, protocol=protocol)
        self.protocol, self.mix, self.stop = protocol, mix, stop
        self.rng = random.Random(number)  # a fixed seed per client: the same mix every run
        self.samples = defaultdict(list)  # operation: seconds
        self.errors = defaultdict(list)  # operation: messages
        self.mine = []  # ids this client indexed and has not deleted

    def run(self):
        while not self.stop.is_set():
            operation = self.rng.choices(OPERATIONS, weights=self.mix)[0]
            if operation == 'delete' and not self.mine:
                operation = 'index'
            start = time.perf_counter()
            try:
                getattr(self, operation)()
            except Exception as e:  # a failure is a figure here, not the end of the run
                self.errors[operation].append(f'{type(e).__name__}: {e}'[:300])
            self.samples[operation].append(time.perf_counter() - start)

    def search(self):
        self.loupe.search(self.rng.choice(QUERIES), limit=10)

    def index(self):
        from loupe.sources import content_id

        photo = new_photo(self.rng)
        report = self.loupe.index([photo], skip_existing=False)
        if report.errors:
            raise RuntimeError(report.errors[0].reason)
        self.mine.append(content_id(photo))

    def delete(self):
        target = self.mine.pop(self.rng.randrange(len(self.mine)))
        if self.loupe.delete([target]) != [target]:
            raise RuntimeError(f'{target} was not deleted')


def main(argv=None) -> dict:
    p = common.parser(NAME, __doc__.splitlines()[0])
    p.add_argument('--clients', type=int, help='concurrent clients (default 16; smoke 4)')
    p.add_argument('--seconds', type=float, help='how long they run (default 120; smoke 3)')
    p.add_argument('--seed-images', type=int, help='photos indexed first (default 32; smoke 4)')
    p.add_argument('--mix', type=lambda s: [float(v) for v in s.split(',')],
                   help='weights of search,index,delete (default 8,1,1)')
    args = p.parse_args(argv)
    clients = args.clients or (4 if args.smoke else 16)
    seconds = args.seconds or (3.0 if args.smoke else 120.0)
    seeds = args.seed_images or (4 if args.smoke else 32)
    mix = args.mix or [8, 1, 1]
    clip, owl = common.clip_model(args), common.owl_model(args)
    workspace = common.cache_dir(args, 'load-run')
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)
    env = {'LOUPE_CLIP_MODEL': clip, 'LOUPE_OWL_MODEL': owl}
    try:
        with common.serve('serve', workspace, env=env, http=True) as service:
            seed = service.client().index(common.image_files(args, seeds))
            assert seed.indexed, seed.errors
            rss_start = service_rss(service.process.pid)
            stop = threading.Event()
            threads = []
            for number in range(clients):
                protocol = 'grpc' if number % 2 == 0 else 'http'
                port = service.port if protocol == 'grpc' else service.http_port
                threads.append(Client(number, protocol, port, mix, stop))
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            time.sleep(seconds)
            stop.set()
            for thread in threads:
                thread.join(600)
            elapsed = time.perf_counter() - started
            rss_end = service_rss(service.process.pid)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    rows, first_errors = [], {}
    for protocol in ('grpc', 'http'):
        for operation in OPERATIONS:
            samples = [s for t in threads if t.protocol == protocol for s in t.samples[operation]]
            errors = [e for t in threads if t.protocol == protocol for e in t.errors[operation]]
            if errors:
                first_errors[f'{protocol} {operation}'] = errors[:3]
            rows.append({'protocol': protocol, 'operation': operation, 'requests': len(samples),
                         'errors': len(errors), **_latency(samples)})
    every = [s for t in threads for samples in t.samples.values() for s in samples]
    rows.append({'protocol': 'all', 'operation': 'all', 'requests': len(every),
                 'errors': sum(r['errors'] for r in rows), **_latency(every)})
    notes = [f'{clients} clients (half gRPC, half HTTP) for {elapsed:.0f} s, mix '
             f'search/index/delete {mix}, after {len(seed.indexed)} seed photos; '
             f'{len(every) / elapsed:.1f} requests/s',
             f'service RSS (all its processes): {rss_start / 2**20:.0f} MiB at start, '
             f'{rss_end / 2**20:.0f} MiB at end']
    return common.finish(NAME, args, {
        'clip_model': clip, 'owl_model': owl, 'clients': clients, 'seconds': elapsed,
        'mix': dict(zip(OPERATIONS, mix)), 'seed_images': len(seed.indexed),
        'rss_start_bytes': rss_start, 'rss_end_bytes': rss_end, 'first_errors': first_errors,
    }, rows, COLUMNS, notes)


def _latency(samples) -> dict:
    """p50/p95/p99/max in ms; None (not NaN: JSON has no NaN) where there are no samples."""
    stats = common.summary_ms(samples)
    return {k: stats[k] if samples else None for k in ('p50_ms', 'p95_ms', 'p99_ms', 'max_ms')}


if __name__ == '__main__':
    main()
