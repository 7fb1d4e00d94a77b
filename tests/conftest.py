import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pulse_devices import pulse  # noqa: F401 (the fixture of a real PulseAudio server: tests/pulse_devices.py)

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent
SHARED = REPO.parent / "shared" / "data"
# The offline profile's previous way into English, Whisper's own translate task, and Apertium for other
# pairs: for tests whose subject is not the translation (serving, catalogues, backgrounds, speakers),
# so they cost what they were sized for; the LLM translator's path is tested end to end where the
# translation is the subject (test_offline, test_offline_directions, test_dub, test_sessions, test_llm_mt).
WHISPER_INTO_ENGLISH = ("--set", "asr.task=translate", "--set", "mt=none")
APERTIUM = ("--set", "mt=apertium")
# A guard against a hang only, never a measure of speed (that is the benchmarks'): how long a test
# waits for a process or an exchange that, working or broken, ends in a second or two, or never.
HANG_S = 120.0
# The benchmarks' model builders (benchmarks/gpu/stack_models.py: the stack at full size, the real checkpoint formats)
# serve the tests too: tiny_models builds its XTTS with them, test_stack_sizes counts them.
sys.path.insert(0, str(REPO / "benchmarks" / "gpu"))


def manifest() -> dict:
    import json

    return {json.loads(line)["audio"]: json.loads(line) for line in (DATA / "fleurs_manifest.jsonl").read_text().splitlines()}


@pytest.fixture(scope="session")
def data() -> Path:
    return DATA


@pytest.fixture(autouse=True)
def _model_cache(tmp_path_factory, monkeypatch):
    # The joined Whisper base model is cached once per test session, never in the user's home.
    monkeypatch.setenv("S3TVR_CACHE", str(tmp_path_factory.getbasetemp() / "s3tvr-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # tests never download


# Test Ray clusters keep Ray's token authentication on, as users' do: Ray 2.60 listens on every
# interface even for --node-ip-address=127.0.0.1, so the token is what keeps other machines out.
RAY_TEST_TOKEN = secrets.token_hex(16)


def ray_env() -> dict[str, str]:
    """The environment of a test's Ray cluster and of every driver that joins it."""
    return {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": RAY_TEST_TOKEN}


def s3tvr_cmd() -> list[str]:
    exe = shutil.which("s3tvr", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "s3tvr"]


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on, between Ray's worker ports (10002-19999 by default) and
    the kernel's ephemeral range, never handed out twice. A port the kernel picks (bind to 0) is an
    ephemeral one, and any outgoing connection may take it between this check and the server's own
    bind: Ray's gRPC clients did, and a head's metrics exporter died with "Address already in use"."""
    first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        port = secrets.choice(range(20000, max(first_ephemeral, 20100)))
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port


@contextlib.contextmanager
def serving(*args, log: Path, env=None, timeout: float = 180):
    """``s3tvr serve ARGS`` as a user starts it, its output in ``log``: the process once it says it
    is serving (the models load first). Stopped, and killed if it must be, whatever the test did."""
    with open(log, "wb") as f:
        proc = subprocess.Popen([*s3tvr_cmd(), "serve", *map(str, args)], stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not _accepts(log.read_text()):  # the models load first; it listens a moment after saying so
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"s3tvr serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _accepts(log: str) -> bool:
    """Has the server whose output is ``log`` said where it serves, and does it accept connections there?"""
    found = re.search(r"on http://\[?([^\]/]+?)\]?:(\d+)/ \(WebSocket /ws", log)
    if not found:
        return False
    host = "127.0.0.1" if found[1] in ("0.0.0.0", "::") else found[1]
    try:
        socket.create_connection((host, int(found[2])), timeout=1).close()
        return True
    except OSError:
        return False


def s3tvr(*args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    """The command as a user runs it."""
    return subprocess.run([*s3tvr_cmd(), *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs)


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    """An expected error as docs/troubleshooting.md promises it: one line naming the cause, no traceback, an
    exit code other than 0 and 1 (1 would be an unexpected crash). Returns the line."""
    assert proc.returncode not in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("s3tvr: error:")]
    assert len(errors) == 1, proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


STACK_MODULES = ("nemo.collections.asr", "transformers", "TTS")


def pytest_runtest_setup(item):
    """Tests marked ``stack`` need the model stack (./setup.sh --stack). Without it they skip,
    except where S3TVR_REQUIRE_STACK is set (CI): there a missing stack is a failure."""
    if item.get_closest_marker("stack") is None:
        return
    import importlib.util

    missing = [m for m in STACK_MODULES if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        message = f"the model stack is not installed ({', '.join(missing)} missing): ./setup.sh --stack"
        if os.environ.get("S3TVR_REQUIRE_STACK"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Tiny random-weight models of the stack, built once per test session."""
    import torch

    from tiny_models import build_marian, build_nemo_ctc, build_nemo_hybrid, build_nllb, build_xtts

    # Seeded: unseeded random weights made the tiny XTTS's output level differ from run to run,
    # sometimes under the tests' "not silent" threshold.
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny-models")

    class Tiny:
        nemo, nemo_text = build_nemo_ctc(root / "nemo")
        nemo_hybrid = build_nemo_hybrid(root / "nemo-hybrid")
        nllb = build_nllb(root / "nllb")
        marian = build_marian(root / "marian")
        xtts = build_xtts(root / "xtts")

    return Tiny
