"""Executor settings (loupe.config) and request parameters (loupe.parameters): one home, typed."""
import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from docarray import DocList

from loupe import config, parameters
from loupe.config import EXECUTOR_SETTINGS, Spec, build
from loupe.errors import ConfigError, InvalidRequestError
from loupe.parameters import ENDPOINTS, MAX_BLOB_BYTES, MAX_QUERY_CHARS, check_parameters
from loupe.schema import ImageDoc

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('value, expected', [(3, 3), (3.0, 3), (1000, 1000)])
def test_integers_arrive_as_integral_floats_over_grpc(value, expected):
    checked = check_parameters('/search', {'limit': value})
    assert checked == {'limit': expected} and type(checked['limit']) is int


@pytest.mark.parametrize('value', [1.7, 'abc', '3', True, None, 0, -1, 1001, [3]])
def test_a_bad_limit_is_a_clear_error_never_truncated(value):
    with pytest.raises(InvalidRequestError,
                       match=re.escape(f'limit must be an integer in [1, 1000], got {value!r}')):
        check_parameters('/search', {'limit': value})


@pytest.mark.parametrize('name, value, rule', [
    ('chunk_limit', 10_001, r'chunk_limit must be an integer in \[1, 10000\] or null'),
    ('rerank_top_k', 101, r'rerank_top_k must be an integer in \[1, 100\]'),
    ('rerank_weight', 1.5, r'rerank_weight must be a number in \[0, 1\]'),
    ('rerank', 'yes', 'rerank must be true or false'),
    ('aggregation', 'median', 'aggregation must be one of max, mean, sum_top_k'),
    ('filter', 'album=x', 'filter must be an object'),
])
def test_caps_and_types_of_search_parameters(name, value, rule):
    with pytest.raises(InvalidRequestError, match=rule):
        check_parameters('/search', {name: value})


def test_null_chunk_limit_means_automatic():
    assert check_parameters('/search', {'chunk_limit': None}) == {'chunk_limit': None}


def test_unknown_names_list_the_valid_ones_and_jina_keys_are_ignored():
    with pytest.raises(InvalidRequestError) as error:
        check_parameters('/search', {'limt': 3, 'detector_model': 'x'})
    message = str(error.value)
    assert message.startswith('unknown parameters detector_model, limt for /search; valid: ')
    assert all(name in message for name in ENDPOINTS['/search'].parameters)
    assert check_parameters('/search', {'__results__': {}, 'limit': 2}) == {'limit': 2}
    with pytest.raises(InvalidRequestError, match='unknown endpoint.*/index, /search'):
        check_parameters('/nowhere', {})


def test_no_request_can_pick_a_model_device_path_or_batch_size():
    for endpoint in ENDPOINTS.values():
        for name in endpoint.parameters:
            assert not re.search('model|device|path|store|batch|half', name), name


def test_a_setting_beyond_a_request_cap_is_allowed_in_the_yaml():
    assert build(config.SegmenterSettings, {'max_boxes': 1000}).max_boxes == 1000
    with pytest.raises(InvalidRequestError, match=r'max_boxes must be an integer in \[0, 256\]'):
        check_parameters('/index', {'max_boxes': 1000})


def test_settings_errors_name_the_executor_and_the_valid_names():
    with pytest.raises(ConfigError, match='unknown ranker setting limt; valid: aggregation, '
                                          'top_k, limit'):
        build(config.RankerSettings, {'limt': 3})
    with pytest.raises(ConfigError, match="device must be 'auto'"):
        build(config.EncoderSettings, {'device': 'tpu'})
    assert build(config.EncoderSettings, {'device': 'cuda:1'}).device == 'cuda:1'


def test_spec_bounds():
    open_low = Spec(float, min=0, max=1, min_open=True)
    assert open_low.parse('x', 1) == 1.0
    with pytest.raises(InvalidRequestError, match=r'x must be a number in \(0, 1\], got 0'):
        open_low.parse('x', 0)


def test_registries_elsewhere_have_the_names_checked_here():
    from loupe.ann import PRECISIONS
    from loupe.rank import AGGREGATIONS
    from loupe.segment import METHODS

    assert set(METHODS) == set(config.PARTITION_METHODS)
    assert set(AGGREGATIONS) == set(config.AGGREGATIONS)
    assert set(PRECISIONS) == set(config.PRECISIONS)


def _defaults(executor: str) -> dict:
    return {f.name: f.default for f in fields(EXECUTOR_SETTINGS[executor])}


def _yaml_settings():
    """(where, executor name, settings) of every executor config and flow YAML."""
    jtypes = {}
    for path in sorted((ROOT / 'executors').glob('*/config.yml')):
        data = yaml.safe_load(path.read_text())
        jtypes[path.parent.name] = data['jtype']
        yield path.name, path.parent.name, data.get('with') or {}
    for path in sorted((ROOT / 'flows').glob('*.yml')):
        for executor in yaml.safe_load(path.read_text())['executors']:
            yield path.name, executor['name'], executor.get('uses_with') or {}


def test_yaml_sets_only_known_settings_that_differ_from_the_defaults():
    for where, name, values in _yaml_settings():
        if name not in EXECUTOR_SETTINGS:  # an executor folder: check by its flow name
            name = {'segmenter': 'segmenter', 'clip_encoder': 'encoder',
                    'chunk_indexer': 'indexer', 'ranker': 'ranker',
                    'owl_reranker': 'reranker', 'parent_storage': 'storage'}.get(name)
        if name is None:  # the join has no settings; the gateway keeps its own (config.yml)
            continue
        defaults = _defaults(name)
        for key, value in values.items():
            assert key in defaults, f'{where}: {name} has no setting {key}'
            assert value != defaults[key], f'{where}: {name}.{key} repeats the default'


def test_executors_take_their_defaults_from_the_settings():
    from executors.ranker.executor import Ranker
    import inspect

    signature = inspect.signature(Ranker.__init__)
    assert {k: p.default for k, p in signature.parameters.items()
            if p.kind is p.KEYWORD_ONLY} == _defaults('ranker')
    ranker = Ranker(top_k=5.0)
    assert ranker.settings == config.RankerSettings(top_k=5)
    with pytest.raises(ConfigError, match='aggregation must be one of'):
        Ranker(aggregation='median')


def test_document_caps():
    from executors.ranker.executor import Ranker

    ranker = Ranker()
    too_many = DocList[ImageDoc]([ImageDoc(text='q')] * (ENDPOINTS['/search'].max_docs + 1))
    with pytest.raises(InvalidRequestError, match='513 documents in one /search request; '
                                                  'at most 512'):
        ranker.rank(too_many, parameters={})
    docs = DocList[ImageDoc]([ImageDoc(text='x' * (MAX_QUERY_CHARS + 1)), ImageDoc(text='ok'),
                              ImageDoc(blob=b'0' * (MAX_BLOB_BYTES + 1))])
    ranker.rank(docs, parameters={})
    assert 'query text of 1,001 characters; at most 1,000' in docs[0].error
    assert docs[1].error is None
    assert docs[2].status == 'error' and 'at most 67,108,864' in docs[2].error


def _readme_block(title: str) -> str:
    text = (ROOT / 'README.md').read_text()
    start = text.index(f'<!-- {title} start -->') + len(f'<!-- {title} start -->')
    return text[start:text.index(f'<!-- {title} end -->')].strip()


def test_readme_tables_are_the_definitions():
    """Regenerate with ``python -m loupe.config`` and ``python -m loupe.parameters``."""
    assert _readme_block('settings table') == config.settings_table()
    assert _readme_block('parameters table') == parameters.parameters_table()
