"""``loupe export kubernetes|compose``: the service's flow, scaled, through Jina's own exporters.

Jina's ``Flow.to_kubernetes_yaml`` / ``to_docker_compose_yaml`` write the manifests; what they
get wrong for this project is fixed afterwards, here, each fix named:

- every executor runs the one loupe image (see the Dockerfile) in its own folder of it
  (``workingDir``), where Jina's ``--uses config.yml`` finds its config and module;
- hosts: servers listen on 0.0.0.0 in a container (Jina copies a loopback host into the args);
- Kubernetes: a StatefulSet carries no ``spec.strategy`` (a Deployment field that strict
  validation and ``kubectl apply`` refuse). With ``volumes``, Jina also turns each head into a
  StatefulSet and drops its merger sidecar (``uses_after``), so heads come from an export
  without volumes and the shards from one with them;
- one persistent volume per shard (``volumeClaimTemplates``; named volumes in Compose), mounted
  at ``/data`` = ``$LOUPE_WORKSPACE``; nothing else gets one;
- resource requests per role; with ``gpu``, one ``nvidia.com/gpu`` per encoder and reranker
  replica (Compose: a device reservation per replica) instead of ``CUDA_VISIBLE_DEVICES=RR``,
  which only a local flow can resolve;
- the gateway is the only service reachable from outside (a LoadBalancer; Compose: the only
  one with published ports); Jina's host cache folder is not mounted into containers.
"""
import copy
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, List
from unittest import mock

import yaml

from loupe import __version__
from loupe.flows import flow_config, jina_defaults
from loupe.scaling import STATEFUL, scale_config

DEFAULT_IMAGE = f'loupe:{__version__}'
APP_DIR = '/app'  # where the Dockerfile puts the project
DATA_DIR = '/data'  # each shard's persistent volume; $LOUPE_WORKSPACE in its container
GPU_ROLES = ('encoder', 'reranker')
PORTS = (54000, 54001)  # gRPC, HTTP
# Requests (what the scheduler reserves), from this project's measurements at full size.
RESOURCES = {
    'segmenter': {'cpu': '1', 'memory': '1Gi'},
    'encoder': {'cpu': '2', 'memory': '3Gi'},
    'indexer': {'cpu': '1', 'memory': '4Gi'},
    'ranker': {'cpu': '250m', 'memory': '512Mi'},
    'reranker': {'cpu': '2', 'memory': '3Gi'},
    'storage': {'cpu': '500m', 'memory': '1Gi'},
    'gateway': {'cpu': '500m', 'memory': '1Gi'},
    'head': {'cpu': '250m', 'memory': '512Mi'},
}


def _export_config(flow: str, shards: int, replicas: int, image: str, volumes: bool) -> Dict:
    config = flow_config(flow)
    scale_config(config, shards, replicas)
    config.get('with', {}).pop('host', None)
    config.setdefault('with', {}).update(port=list(PORTS), protocol=['grpc', 'http'])
    gateway = config.get('gateway')
    if gateway and str(gateway.get('uses', '')).endswith(('.yml', '.yaml')):
        gateway['uses'] = f'docker://{image}'  # loupe's own gateway, from its folder
        gateway.pop('host', None)
    for executor in config['executors']:
        executor['uses'] = f'docker://{image}'
        if executor.get('uses_after'):
            executor['uses_after'] = f'docker://{image}'
        executor.pop('host', None)
        if executor['name'] in STATEFUL:
            executor.setdefault('env', {})['LOUPE_WORKSPACE'] = DATA_DIR
            if volumes:
                executor['volumes'] = [DATA_DIR]
    return config


def _folders(flow: str) -> Dict[str, str]:
    """Executor name -> its folder inside the image (where its config.yml is)."""
    config = flow_config(flow)
    out = {}
    for executor in config['executors']:
        folder = Path(executor['uses']).parent.name
        out[executor['name']] = f'{APP_DIR}/executors/{folder}'
    gateway = str((config.get('gateway') or {}).get('uses', ''))
    if gateway.endswith(('.yml', '.yaml')):
        out['gateway'] = f'{APP_DIR}/executors/{Path(gateway).parent.name}'
    return out


@contextmanager
def _exporting(image: str):
    """Jina's exporters read the gateway image and the default host from the environment;
    the environment is restored afterwards."""
    with mock.patch.dict(os.environ, {'JINA_GATEWAY_IMAGE': image,
                                      'JINA_LOG_LEVEL': 'WARNING'}):  # its notes: temp folders
        os.environ.pop('JINA_DEFAULT_HOST', None)
        yield


def _flow(config: Dict):
    jina_defaults()
    from jina import Flow

    return Flow.load_config(copy.deepcopy(config))


def _listen_everywhere(args: List[str]) -> List[str]:
    return ['0.0.0.0' if a in ('127.0.0.1', 'localhost') and i and args[i - 1] == '--host'
            else a for i, a in enumerate(args)]


def _role(name: str) -> str:
    """``indexer-head`` -> head, ``indexer-1`` -> indexer, ``encoder`` -> encoder."""
    if name.endswith('-head'):
        return 'head'
    base, _, suffix = name.rpartition('-')
    return base if suffix.isdigit() and base else name


# -- Kubernetes --------------------------------------------------------------------------------

def _fix_k8s(doc: Dict, role: str, folders: Dict[str, str], gpu: bool) -> Dict:
    kind = doc.get('kind')
    if kind == 'StatefulSet':
        doc['spec'].pop('strategy', None)
    if kind == 'Service' and role == 'gateway':
        doc['spec']['type'] = 'LoadBalancer'
    if kind not in ('Deployment', 'StatefulSet'):
        return doc
    for container in doc['spec']['template']['spec']['containers']:
        container['args'] = _listen_everywhere([str(a) for a in container.get('args', [])])
        resources = container.setdefault('resources', {})
        if container['name'] == 'uses-after':
            container['workingDir'] = f'{APP_DIR}/executors/shard_merge'
            resources['requests'] = dict(RESOURCES['head'])
            continue
        resources['requests'] = dict(RESOURCES.get(role, RESOURCES['head']))
        if role in folders:
            container['workingDir'] = folders[role]
        if gpu and role in GPU_ROLES:
            resources.setdefault('limits', {})['nvidia.com/gpu'] = 1
    return doc


def export_kubernetes(directory: Path, shards: int = 1, replicas: int = 1, gpu: bool = False,
                      image: str = DEFAULT_IMAGE, namespace: str = 'loupe',
                      flow: str = 'serve') -> List[Path]:
    """Write the manifests under ``directory`` (one folder per executor); returns the files."""
    directory = Path(directory)
    folders = _folders(flow)
    with tempfile.TemporaryDirectory() as tmp, _exporting(image):
        for volumes in (False, True):
            _flow(_export_config(flow, shards, replicas, image, volumes)).to_kubernetes_yaml(
                f'{tmp}/{volumes}', k8s_namespace=namespace)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        (directory / 'namespace.yml').write_text(yaml.safe_dump(
            {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': namespace}}))
        written = [directory / 'namespace.yml']
        for source in sorted(Path(f'{tmp}/False').rglob('*.yml')):
            relative = source.relative_to(f'{tmp}/False')
            role = _role(source.stem)
            # The shards' StatefulSets with their volumes; heads and the rest without.
            if role in STATEFUL and source.stem != role:
                source = Path(f'{tmp}/True') / relative
            docs = [_fix_k8s(d, role, folders, gpu)
                    for d in yaml.safe_load_all(source.read_text()) if d]
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            written.append(target)
    return written


# -- Docker Compose ----------------------------------------------------------------------------

def _fix_compose(compose: Dict, folders: Dict[str, str], gpu: bool) -> Dict:
    volumes = {}
    for name, service in compose['services'].items():
        role = name.split('-rep-')[0]
        sidecar = role.endswith('-uses-after')
        role = 'head' if sidecar else _role(role)
        command = _listen_everywhere([str(a) for a in service.get('command', [])])
        if '--workspace' in command:  # Jina's host cache, not data: state lives in /data
            i = command.index('--workspace')
            del command[i:i + 2]
        service['command'] = command
        service.pop('volumes', None)
        if sidecar:
            service['working_dir'] = f'{APP_DIR}/executors/shard_merge'
        elif role in folders:
            service['working_dir'] = folders[role]
        if role in STATEFUL and name != f'{role}-head':
            volume = f'{name}-data'
            volumes[volume] = {}
            service['volumes'] = [f'{volume}:{DATA_DIR}']
        if role != 'gateway':
            service.pop('ports', None)
            service.pop('expose', None)
        else:
            service['ports'] = [f'{port}:{port}' for port in PORTS]
        env = [e for e in service.get('environment', []) if not e.startswith('CUDA_VISIBLE')]
        if env:
            service['environment'] = env
        else:
            service.pop('environment', None)
        request = RESOURCES.get(role, RESOURCES['head'])
        reservations = {'cpus': str(_cpus(request['cpu'])),
                        'memory': request['memory'].replace('Gi', 'G').replace('Mi', 'M')}
        if gpu and role in GPU_ROLES:
            replica = name.rpartition('-rep-')[2] if '-rep-' in name else '0'
            reservations['devices'] = [{'driver': 'nvidia', 'device_ids': [replica],
                                        'capabilities': ['gpu']}]
        service['deploy'] = {'resources': {'reservations': reservations}}
    if volumes:
        compose['volumes'] = volumes
    return compose


def _cpus(value: str) -> float:
    return int(value[:-1]) / 1000 if value.endswith('m') else float(value)


def export_compose(path: Path, shards: int = 1, replicas: int = 1, gpu: bool = False,
                   image: str = DEFAULT_IMAGE, flow: str = 'serve') -> List[Path]:
    """Write one Compose file at ``path``; returns it."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp, _exporting(image):
        raw = Path(tmp) / 'compose.yml'
        _flow(_export_config(flow, shards, replicas, image, True)).to_docker_compose_yaml(
            str(raw), network_name='loupe')
        compose = _fix_compose(yaml.safe_load(raw.read_text()), _folders(flow), gpu)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(compose, sort_keys=False))
    return [path]
