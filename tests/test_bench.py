"""Each benchmark runs end to end at smoke size (tiny models) and writes its documented JSON.

Figures at this size mean nothing, so nothing here asserts on them; what is checked is that the
scripts keep working as the code they measure changes.
"""
import json

import pytest

from bench import (ann, cli_search, codec, decode, duplicates, encoder, families, index_throughput,
                   load, query_latency, recommend, rerank_batch, shards, startup)

BENCHMARKS = [ann, cli_search, codec, decode, duplicates, encoder, families, index_throughput, load,
              query_latency, recommend, rerank_batch, shards, startup]


@pytest.mark.parametrize('bench', BENCHMARKS, ids=lambda b: b.NAME)
def test_smoke_run_writes_the_documented_json(bench, tiny_clip, tiny_owlvit, tmp_path):
    out = tmp_path / f'{bench.NAME}.json'
    returned = bench.main(['--smoke', '--json', str(out), '--work', str(tmp_path / 'work'),
                           '--clip-model', tiny_clip, '--owl-model', tiny_owlvit])
    written = json.loads(out.read_text())
    assert written['benchmark'] == bench.NAME and written['smoke'] is True
    assert written['machine']['cores'] >= 1
    assert written['rows'], 'no figures'
    for row in written['rows']:
        assert set(bench.COLUMNS) <= set(row)
    assert returned['rows'] == written['rows']
