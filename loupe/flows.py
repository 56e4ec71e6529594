"""Loading the YAML flows from anywhere, with host/port and executor overrides."""
import importlib.resources
import os
from pathlib import Path
from typing import Optional

import yaml

from loupe.constants import ENV_FLOWS
from loupe.errors import ConfigError


def _resource_root() -> Path:
    """The folder holding flows/ and executors/: the repository when loupe runs from a checkout
    or an editable install, else the copy a wheel installs inside the package."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / 'pyproject.toml').is_file() and (checkout / 'flows').is_dir():
        return checkout
    return Path(str(importlib.resources.files('loupe.resources')))


PROJECT_ROOT = _resource_root()
FLOW_NAMES = ('index', 'query', 'serve')


def jina_defaults() -> None:
    """Loopback servers, no banner, no telemetry: set before jina starts anything."""
    os.environ.setdefault('JINA_DEFAULT_HOST', '127.0.0.1')
    os.environ.setdefault('JINA_HIDE_SURVEY', '1')
    os.environ.setdefault('JINA_OPTOUT_TELEMETRY', '1')


def flow_path(name_or_path: str) -> Path:
    """``index``/``query``/``serve`` name a flow in ``$LOUPE_FLOWS`` (default: the project's flows/)."""
    if name_or_path in FLOW_NAMES:
        return Path(os.environ.get(ENV_FLOWS) or PROJECT_ROOT / 'flows') / f'{name_or_path}.yml'
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f'no flow {name_or_path!r}: give one of {", ".join(FLOW_NAMES)} '
                         'or a YAML file')
    return path


def serve_topology() -> dict:
    """The service's flow, derived: the query flow with the index flow's segmenter in front, over
    gRPC and HTTP. (A ``serve.yml`` in ``$LOUPE_FLOWS`` replaces it.)

    One flow indexes and searches, so a search sees images indexed after start-up (the chunk
    index lives in one process; two flows would each hold a copy). /index passes through every
    executor (ranker and reranker let it by; storage, last, stores the parents); /search skips
    the segmenter. A chain rather than the index flow's branches: requests are pipelined across
    executors, so throughput is bound by the slowest stage (the encoder) either way.
    """
    query = yaml.safe_load(flow_path('query').read_text())
    index = yaml.safe_load(flow_path('index').read_text())
    segmenter = next(e for e in index['executors'] if e.get('name') == 'segmenter')
    query['executors'] = [{k: v for k, v in segmenter.items() if k != 'needs'},
                          *query['executors']]
    query.setdefault('with', {})['protocol'] = ['grpc', 'http']
    return query


def flow_config(name_or_path: str, host: Optional[str] = None, port=None,
                protocol=None, executors: Optional[dict] = None,
                gateway: Optional[dict] = None) -> dict:
    """The flow's YAML as a dict, executor ``uses`` made absolute so any working directory works.

    ``executors`` maps an executor name to ``uses_with`` values that override the YAML's;
    ``gateway`` holds such values for the gateway (executors/gateway/config.yml).
    """
    path = flow_path(name_or_path)
    if name_or_path == 'serve' and not path.is_file():
        config, path = serve_topology(), flow_path('query')
    else:
        config = yaml.safe_load(path.read_text())
    for executor in [*config.get('executors', []), config.get('gateway') or {}]:
        for key in ('uses', 'uses_after'):
            uses = executor.get(key, '')
            if (isinstance(uses, str) and uses.endswith(('.yml', '.yaml'))
                    and not Path(uses).is_absolute()):
                candidates = [path.parent / uses, path.parent.parent / uses, PROJECT_ROOT / uses]
                executor[key] = str(next((c for c in candidates if c.is_file()), candidates[-1]))
        overrides = (executors or {}).get(executor.get('name'))
        if overrides:
            executor['uses_with'] = {**executor.get('uses_with', {}), **overrides}
    if gateway:
        section = config.setdefault('gateway', {})
        section['uses_with'] = {**section.get('uses_with', {}), **gateway}
    settings = config.setdefault('with', {})
    for key, value in (('host', host), ('port', port), ('protocol', protocol)):
        if value is not None:
            settings[key] = value
    _search_bypass(config)
    return config


def executor_settings(config: dict, name: str):
    """The settings executor ``name`` of ``config`` (a ``flow_config``) runs with: loupe.config's
    defaults, then its config.yml's ``with``, then the flow's ``uses_with``."""
    from loupe.config import EXECUTOR_SETTINGS, build

    entry = next(e for e in config['executors'] if e.get('name') == name)
    configured = yaml.safe_load(Path(entry['uses']).read_text()).get('with') or {}
    return build(EXECUTOR_SETTINGS[name], {**configured, **(entry.get('uses_with') or {})})


def _jtype(uses) -> Optional[str]:
    """The class an executor or gateway YAML names; None for anything else (a class name, a hub
    address, a file that is not there)."""
    if not isinstance(uses, str) or not uses.endswith(('.yml', '.yaml')) or \
            not Path(uses).is_file():
        return None
    return (yaml.safe_load(Path(uses).read_text()) or {}).get('jtype')


def _search_bypass(config: dict) -> None:
    """Tell the loupe gateway which executors a /search can go around.

    A Jina hop costs a few milliseconds however little the executor does, and Jina's gateway
    does not reliably skip executors that do not bind an endpoint. A search goes around loupe's
    segmenter (it binds /index alone) and, when loupe's reranker has ``rerank`` off, around the
    reranker unless the request sets ``rerank`` (``GatewaySettings.search_bypass``). The
    reranker's setting stays its own: this only reads it. Executors of other classes under
    these names are never bypassed.
    """
    gateway = config.get('gateway') or {}
    if _jtype(gateway.get('uses')) != 'LoupeGateway':
        return
    overrides = gateway.setdefault('uses_with', {})
    if 'search_bypass' in overrides:
        return
    classes = {e['name']: _jtype(e.get('uses')) for e in config.get('executors', [])
               if e.get('name') in ('segmenter', 'reranker')}
    bypass = {'segmenter': None} if classes.get('segmenter') == 'Segmenter' else {}
    if classes.get('reranker') == 'OwlReranker':
        try:
            reranks = executor_settings(config, 'reranker').rerank
        except ConfigError:
            reranks = True  # the flow will refuse its settings and say why: route as written
        if not reranks:
            bypass['reranker'] = 'rerank'
    if bypass:
        overrides['search_bypass'] = bypass


def scaled_config(name_or_path: str, shards: Optional[int] = None,
                  replicas: Optional[int] = None, gpu: bool = False, **kwargs) -> dict:
    """``flow_config`` with shards and replicas (``loupe.scaling``), checked against the workspace.

    ``shards`` None: as the YAML says, else as the workspace's data was made (1 when new).
    """
    from loupe.scaling import check_workspace, flow_shards, scale_config

    config = flow_config(name_or_path, **kwargs)
    if shards is None and set(flow_shards(config)) <= {1}:
        shards = check_workspace(None)
    scale_config(config, shards, replicas, gpu)
    counts = set(flow_shards(config))
    if len(counts) == 1:
        check_workspace(counts.pop())
    return config


def load_flow(name_or_path: str, **kwargs):
    jina_defaults()
    from jina import Flow

    return Flow.load_config(scaled_config(name_or_path, **kwargs))
