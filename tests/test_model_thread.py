"""loupe.model_thread: every call runs on one thread per process, results and errors come back."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from loupe import model_thread


def test_calls_from_many_threads_run_on_one_thread_and_return():
    with ThreadPoolExecutor(max_workers=4) as pool:
        seen = list(pool.map(lambda i: model_thread.run(lambda: (i, threading.get_ident())),
                             range(20)))
    assert [i for i, _ in seen] == list(range(20))
    assert len({ident for _, ident in seen}) == 1
    assert seen[0][1] != threading.get_ident()


def test_an_error_is_raised_to_the_caller():
    def fail():
        raise ValueError('broken')

    with pytest.raises(ValueError, match='broken'):
        model_thread.run(fail)
    assert model_thread.run(lambda: 'still works') == 'still works'


def test_a_nested_call_runs_in_place_instead_of_waiting_for_itself():
    outer = model_thread.run(lambda: (threading.get_ident(),
                                      model_thread.run(threading.get_ident)))
    assert outer[0] == outer[1]
