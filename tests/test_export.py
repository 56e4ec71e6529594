"""``loupe export``: Kubernetes manifests and a Compose file that validate offline, one volume per
shard, one image, the gateway the only service reachable from outside."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loupe.export import DATA_DIR, export_compose

ROOT = Path(__file__).resolve().parents[1]
IMAGE = 'registry.example.com/loupe:1.2.3'
K8S_VERSION = '1.33.0'  # a current Kubernetes release; kubernetes-validate bundles its schemas


def _cli(*args):
    return subprocess.run([sys.executable, '-m', 'loupe.cli', *args], capture_output=True,
                          text=True, check=True, timeout=300, cwd=ROOT)


@pytest.fixture(scope='module')
def manifests(tmp_path_factory):
    folder = tmp_path_factory.mktemp('k8s') / 'out'
    out = _cli('export', 'kubernetes', str(folder), '--shards', '3', '--replicas', '2', '--gpu',
               '--image', IMAGE)
    files = [Path(line) for line in out.stdout.split()]
    assert files and all(f.is_file() for f in files)
    return {f: [d for d in yaml.safe_load_all(f.read_text()) if d] for f in files}


def _workloads(manifests):
    return [d for docs in manifests.values() for d in docs
            if d['kind'] in ('Deployment', 'StatefulSet')]


def test_every_manifest_passes_strict_schema_validation(manifests):
    import kubernetes_validate

    for path, docs in manifests.items():
        for doc in docs:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises when invalid
    assert not [d for d in _workloads(manifests)
                if d['kind'] == 'StatefulSet' and 'strategy' in d['spec']]


def test_each_shard_has_its_own_persistent_volume(manifests):
    workloads = {d['metadata']['name']: d for d in _workloads(manifests)}
    for role in ('indexer', 'storage'):
        claims = set()
        for shard in range(3):
            shard_set = workloads[f'{role}-{shard}']
            assert shard_set['kind'] == 'StatefulSet'
            (claim,) = shard_set['spec']['volumeClaimTemplates']
            (container,) = shard_set['spec']['template']['spec']['containers']
            assert {'mountPath': DATA_DIR, 'name': claim['metadata']['name']} in \
                container['volumeMounts']
            claims.add(claim['metadata']['name'])
            env = {e['name']: e.get('value') for e in container.get('env', [])}
            config = next(d for d in manifests[next(p for p in manifests
                                                    if p.stem == f'{role}-{shard}')]
                          if d['kind'] == 'ConfigMap')
            assert config['data']['LOUPE_WORKSPACE'] == DATA_DIR or \
                env.get('LOUPE_WORKSPACE') == DATA_DIR
        assert len(claims) == 3
        head = workloads[f'{role}-head']  # the merger runs beside the head, with no volume
        containers = {c['name']: c for c in head['spec']['template']['spec']['containers']}
        assert 'uses-after' in containers and 'volumeClaimTemplates' not in head['spec']
    stateless = [d for d in _workloads(manifests)
                 if not d['metadata']['name'].startswith(('indexer', 'storage'))]
    assert stateless and not [d for d in stateless if 'volumeClaimTemplates' in d['spec']]


def test_one_image_each_executor_in_its_folder_listening_on_all_interfaces(manifests):
    for workload in _workloads(manifests):
        name = workload['metadata']['name']
        for container in workload['spec']['template']['spec']['containers']:
            assert container['image'] == IMAGE
            assert container['resources']['requests']['cpu']
            args = container['args']
            for i, arg in enumerate(args[:-1]):
                if arg == '--host':
                    assert args[i + 1] == '0.0.0.0'
            if container.get('workingDir'):  # /app in the image is the project root
                folder = ROOT / container['workingDir'].removeprefix('/app/')
                assert (folder / 'config.yml').is_file(), name
            elif not name.endswith('head') and name != 'gateway':
                pytest.fail(f'{name} has no folder of its own')


def test_gpus_for_encoder_and_reranker_replicas_only(manifests):
    for workload in _workloads(manifests):
        name = workload['metadata']['name']
        (container, *_) = workload['spec']['template']['spec']['containers']
        gpus = container['resources'].get('limits', {}).get('nvidia.com/gpu')
        assert gpus == (1 if name in ('encoder', 'reranker') else None), name
        if name in ('encoder', 'reranker', 'segmenter'):
            assert workload['spec']['replicas'] == 2


def test_only_the_gateway_is_exposed(manifests):
    services = [d for docs in manifests.values() for d in docs if d['kind'] == 'Service']
    exposed = {s['metadata']['name'] for s in services if s['spec']['type'] != 'ClusterIP'}
    assert exposed and all(name.startswith('gateway') for name in exposed)


def test_compose_file_passes_the_compose_spec_schema(tmp_path):
    (path,) = export_compose(tmp_path / 'compose.yml', shards=2, replicas=2, gpu=True,
                             image=IMAGE)
    subprocess.run(['check-jsonschema', '--builtin-schema', 'vendor.compose-spec', str(path)],
                   check=True, capture_output=True, timeout=120)
    compose = yaml.safe_load(path.read_text())
    services = compose['services']
    assert {s['image'] for s in services.values()} == {IMAGE}
    shard_services = [n for n in services if n.split('-')[-1].isdigit()
                      and n.startswith(('indexer', 'storage'))]
    assert sorted(shard_services) == ['indexer-0', 'indexer-1', 'storage-0', 'storage-1']
    volumes = [services[n]['volumes'] for n in shard_services]
    assert all(len(v) == 1 and v[0].endswith(f':{DATA_DIR}') for v in volumes)
    assert len({v[0] for v in volumes}) == 4 and set(compose['volumes']) == {
        v[0].split(':')[0] for v in volumes}
    assert [n for n, s in services.items() if 'ports' in s] == ['gateway']
    assert not [n for n, s in services.items()
                if 'volumes' in s and n not in shard_services]
    gpus = {n: s['deploy']['resources']['reservations'].get('devices')
            for n, s in services.items()}
    assert gpus['encoder-rep-1'][0]['device_ids'] == ['1']
    assert gpus['segmenter-rep-0'] is None and gpus['indexer-0'] is None
