"""``loupe serve`` leaves nothing running whatever ends it, and a port in use is one clear line.

Each test starts the service as a user would, in a session of its own (so that its process
group can be killed without touching pytest), and waits a bounded time for the outcome.
"""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from loupe.constants import (ENV_CLIP_MODEL, ENV_DETECTOR_MODEL, ENV_DINO_MODEL, ENV_OWL_MODEL,
                             ENV_WORKSPACE)

START_S, END_S = 300, 60  # bounds on start-up (a loaded 2-core machine) and on the ending


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(('127.0.0.1', port))
        except OSError:
            return True
        return False


def _children(pid: int) -> list:
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture
def env(tiny_clip, tiny_owlvit, tiny_detector, tiny_dino, tmp_path):
    return {**os.environ, ENV_CLIP_MODEL: tiny_clip, ENV_OWL_MODEL: tiny_owlvit,
            ENV_DETECTOR_MODEL: tiny_detector, ENV_DINO_MODEL: tiny_dino,
            ENV_WORKSPACE: str(tmp_path / 'workspace')}


def _start(env, ports):
    parent = subprocess.Popen(
        [sys.executable, '-m', 'loupe.cli', 'serve', '--port', str(ports[0]),
         '--http-port', str(ports[1])], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + START_S
    for line in parent.stderr:  # where the service says it serves
        if 'loupe serving' in line or time.monotonic() > deadline:
            break
    assert parent.poll() is None and all(_listening(p) for p in ports), 'did not start'
    (child,) = _children(parent.pid)
    return parent, os.getpgid(child)


def _wait_until_gone(pgid, ports) -> bool:
    deadline = time.monotonic() + END_S
    while time.monotonic() < deadline:
        if not _group_alive(pgid) and not any(_listening(p) for p in ports):
            return True
        time.sleep(0.5)
    return False


@pytest.mark.parametrize('ending', ['SIGKILL to the group', 'SIGHUP'])
def test_the_service_ends_with_its_parent(env, ending):
    ports = (_free_port(), _free_port())
    parent, service_group = _start(env, ports)
    try:
        if ending == 'SIGHUP':
            parent.send_signal(signal.SIGHUP)  # the terminal was closed
        else:
            os.killpg(parent.pid, signal.SIGKILL)
        gone = _wait_until_gone(service_group, ports)
    finally:
        if _group_alive(service_group):  # clean up what the test started, then fail
            os.killpg(service_group, signal.SIGKILL)
        parent.kill()
        parent.wait(10)
    assert gone, f'service processes still running {END_S} s after {ending}'


def test_a_port_in_use_is_one_clear_line(env):
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, '-m', 'loupe.cli', 'serve', '--port', str(port),
             '--http-port', str(_free_port())], env=env, capture_output=True, text=True,
            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f'loupe: 127.0.0.1:{port} is already in use (is another loupe serve running?); '
        'choose other ports with --port / --http-port']
