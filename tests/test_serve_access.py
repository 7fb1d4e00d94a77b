"""``s3tvr serve``: who may connect (the WebSocket's Origin) and what it tells whoever runs it
(``/healthz``, ``/readyz``, ``/metrics``): real servers on real sockets over the fake backends, as
``tests/test_serve.py``'s."""

import asyncio
import json
import os
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile as sf
from prometheus_client.parser import text_string_to_metric_families
from test_serve import CLIP, TOKEN, Running, exchange, refused, run
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from s3tvr import Engine, load_config
from s3tvr.audio.decode import load_audio
from s3tvr.errors import InputError
from s3tvr.serve import ServeOptions, client
from s3tvr.serve.server import Server

from conftest import free_port, one_line_error, s3tvr, serving

EVIL = "http://evil.example"
END = json.dumps({"type": "end"})
PAIR = "from=es&to=en"


@pytest.fixture(scope="module")
def local():
    """The loopback default: no token, one session at a time."""
    running = Running(max_sessions=1)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def allowing():
    """A server with a token that lets pages of EVIL in."""
    running = Running(token=TOKEN, allow_origins=(EVIL,))
    yield running
    running.stop()


def session(port, origin=None, q=PAIR):
    """A session that ends at once (its events, close code and reason), opened by a page of ``origin``."""
    return run(exchange(port, q, send=[END], headers={"Origin": origin} if origin else None))


def served(got):
    assert got.code == 1000 and [e["type"] for e in got.events] == ["ready", "done"], got


def get(port, path):
    """GET ``path``: (status, body, content type), an error status too."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode(), response.headers["content-type"]
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers["content-type"]


def metrics(port):
    """Each sample of /metrics by (name, labels as a sorted tuple): its value."""
    status, body, kind = get(port, "/metrics")
    assert status == 200 and kind.startswith("text/plain"), (status, kind)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(body) for s in family.samples}


# -- who may connect --------------------------------------------------------------------------


def test_a_page_of_another_site_is_refused_with_1008_naming_its_origin_and_the_flag(local):
    before = metrics(local.port).get(("s3tvr_refusals_total", (("reason", "origin"),)), 0)
    got = session(local.port, EVIL)
    refused(got, 1008, EVIL, f"--allow-origin {EVIL}")
    assert not any(e["type"] == "ready" for e in got.events) and local.server.active == 0
    # Near misses are other origins: another port, https for a ws:// server, a sandboxed page's "null".
    for origin in (f"http://127.0.0.1:{free_port()}", f"https://127.0.0.1:{local.port}", "null", "http://127.0.0.1.evil.example"):
        refused(session(local.port, origin), 1008, origin, "--allow-origin")
    assert metrics(local.port)[("s3tvr_refusals_total", (("reason", "origin"),))] == before + 5
    assert local.idle()


def test_the_servers_own_pages_and_clients_that_send_no_origin_are_served(local, data, tmp_path):
    served(session(local.port, f"http://127.0.0.1:{local.port}"))  # the page at / of this very server
    served(session(local.port, f"HTTP://127.0.0.1:{local.port}"))  # origins compare as origins: case, default ports
    served(session(local.port))  # the websockets client sends no Origin
    # As the client command (and its library) connect: no Origin either.
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(8000, np.float32), 16000)
    proc = s3tvr("client", f"ws://127.0.0.1:{local.port}/ws", "--from", "es", "--to", "en", "--input", silence,
                 "--output", tmp_path / "out.wav")
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1].startswith("0 utterances"), (proc.stdout, proc.stderr)
    assert local.idle()


def rebound(port, q=PAIR):
    """A session opened by a page of rebind.example, whose name the site then pointed at this
    machine (DNS rebinding): its Origin and the Host its browser sends name the same site."""
    async def go():
        sock = socket.create_connection(("127.0.0.1", port))
        url = f"ws://rebind.example:{port}/ws?{q}"  # the Host header; the socket goes to 127.0.0.1
        async with connect(url, sock=sock, origin=f"http://rebind.example:{port}", compression=None) as ws:
            events = []
            try:
                events.append(json.loads(await ws.recv()))
                await ws.send(END)
                async for message in ws:
                    events.append(json.loads(message))
            except ConnectionClosed:
                pass
            return events, ws.close_code, ws.close_reason

    return run(go())


def test_a_page_whose_name_was_pointed_at_this_machine_is_refused_without_a_token(local, allowing):
    events, code, reason = rebound(local.port)
    assert code == 1008 and "http://rebind.example" in reason and "--allow-origin" in reason, (code, reason, events)
    # Without the token it can do nothing there; with it, the name is the server's own (a LAN name, a proxy's).
    events, code, reason = rebound(allowing.port)
    assert code == 1008 and reason.startswith("this server needs a token"), (code, reason)
    events, code, reason = rebound(allowing.port, f"{PAIR}&token={TOKEN}")
    assert code == 1000 and [e["type"] for e in events] == ["ready", "done"], (code, reason, events)


def test_allow_origin_lets_that_site_in_and_no_other(allowing):
    served(session(allowing.port, EVIL, f"{PAIR}&token={TOKEN}"))
    refused(session(allowing.port, "http://other.example", f"{PAIR}&token={TOKEN}"), 1008, "http://other.example")
    # The origin is checked before the token: a page of another site learns nothing more.
    refused(session(allowing.port, "http://other.example"), 1008, "--allow-origin")
    refused(session(allowing.port, EVIL), 1008, "token")  # let in by origin, still asked for the token
    assert allowing.idle()


def test_allow_origin_star_lets_any_page_in():
    anyone = Running(allow_origins=("*",))
    try:
        served(session(anyone.port, EVIL))
        served(session(anyone.port, "null"))
    finally:
        anyone.stop()


def test_allow_origin_null_lets_pages_without_an_origin_in_as_the_refusal_says(local):
    # A file:// page or a sandboxed iframe sends "Origin: null": refused, with a hint the server takes.
    got = session(local.port, "null")
    refused(got, 1008, "Origin: null", "--allow-origin null")
    assert ServeOptions(allow_origins=("null",)).allow_origins == ("null",)
    nulls = Running(allow_origins=("null",))
    try:
        served(session(nulls.port, "null"))
        refused(session(nulls.port, EVIL), 1008, EVIL)  # null is not *
    finally:
        nulls.stop()


@pytest.mark.parametrize("origin", ["null", EVIL, "http://127.0.0.1.evil.example:8080", "chrome-extension://abcdefghijklmnop",
                                    "https://" + "a" * 60 + ".example", "http://[::1", "ftp://files.example", "x" * 200])
def test_every_origin_refusal_suggests_a_value_the_server_takes(local, origin):
    got = session(local.port, origin)
    refused(got, 1008)
    words = got.reason.split()
    if "--allow-origin" in words:
        value = words[words.index("--allow-origin") + 1].strip("'")
        if value != "THEIR-ORIGIN":
            ServeOptions(allow_origins=(value,))  # accepted: the hint is true
            assert value in (origin, "*"), (origin, got.reason)


@pytest.mark.parametrize("origin", ["app.example", "https://app.example/", "ftp://app.example", "https://app.example:port", "nul"])
def test_allow_origin_takes_only_origins(origin):
    with pytest.raises(InputError, match="--allow-origin"):
        ServeOptions(allow_origins=(origin,))
    assert ServeOptions(allow_origins=("https://app.example:8443", "*", "null")).allow_origins == ("https://app.example:8443", "*", "null")


# -- health, readiness, metrics ------------------------------------------------------------------


def test_healthz_and_readyz_say_whether_a_session_would_be_served(local):
    assert get(local.port, "/healthz")[:2] == (200, "ok")
    assert get(local.port, "/readyz")[:2] == (200, "ready")

    async def held():
        async with connect(f"{local.url}?{PAIR}", compression=None) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
            full = await asyncio.to_thread(get, local.port, "/readyz")
            alive = await asyncio.to_thread(get, local.port, "/healthz")
            await ws.send(END)
            async for _ in ws:
                pass
        return full, alive

    full, alive = run(held())
    assert full[:2] == (503, "full: 1 of 1 sessions") and alive[:2] == (200, "ok")
    assert local.idle()
    assert get(local.port, "/readyz")[:2] == (200, "ready")


def test_readyz_says_loading_until_the_models_are_loaded():
    engine = Engine(load_config("fake", [], src_lang="es", tgt_lang="en"))
    server = Server(engine, ServeOptions())
    assert server.unready() == "loading"
    engine.setup()
    try:
        assert server.unready() == ""
    finally:
        engine.cleanup()


def test_the_endpoints_ask_no_token(allowing):
    assert get(allowing.port, "/healthz")[0] == 200 and get(allowing.port, "/readyz")[0] == 200
    assert ("s3tvr_sessions_active", ()) in metrics(allowing.port)


def test_metrics_count_sessions_refusals_closes_and_time_each_utterance(local, data):
    before = metrics(local.port)
    names = {name for name, _ in before}
    for name in ("s3tvr_sessions_active", "s3tvr_sessions_total", "s3tvr_first_audio_seconds_count",
                 "s3tvr_end_offset_seconds_count"):
        assert name in names, sorted(names)
    refused(session(local.port, EVIL), 1008)
    result = run(client.stream_file(local.url, load_audio(data / CLIP), "es", "en", realtime=False))
    assert result.ok and result.records
    assert local.idle()
    after = metrics(local.port)

    def moved(name, labels=()):
        return after.get((name, labels), 0) - before.get((name, labels), 0)

    spoken = [r for r in result.records if r.latency_s is not None]
    assert moved("s3tvr_sessions_total") == 1 and after[("s3tvr_sessions_active", ())] == 0
    assert moved("s3tvr_refusals_total", (("reason", "origin"),)) == 1
    assert moved("s3tvr_closes_total", (("code", "1008"),)) == 1 and moved("s3tvr_closes_total", (("code", "1000"),)) == 1
    assert moved("s3tvr_first_audio_seconds_count") == len(spoken) >= 1
    assert moved("s3tvr_first_audio_seconds_sum") == pytest.approx(sum(r.latency_s for r in spoken), abs=1e-6)
    assert moved("s3tvr_end_offset_seconds_count") == len(spoken)  # sentence mode: each utterance its own source
    for stage in ("asr", "tts"):
        assert moved("s3tvr_stage_seconds_count", (("stage", stage),)) == len(result.records), stage
    # Counts and times only: nothing a session said.
    text = get(local.port, "/metrics")[1]
    assert not any(r.src_text in text or r.tgt_text in text for r in result.records)


def test_two_servers_in_one_process_keep_their_own_metrics(local):
    other = Running()
    try:
        served(session(other.port))
        assert metrics(other.port)[("s3tvr_sessions_total", ())] == 1
        assert metrics(local.port)[("s3tvr_sessions_total", ())] == local.server.served
    finally:
        other.stop()


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", " ", "\t\n"])
def test_an_empty_token_is_refused_not_served_without_one(token):
    with pytest.raises(InputError, match="--token is empty"):
        ServeOptions(token=token)
    env = {**os.environ}
    env.pop("S3TVR_TOKEN", None)
    one_line_error(s3tvr("serve", "--config", "fake", "--port", free_port(), "--token", token, env=env), "--token is empty")
    one_line_error(s3tvr("serve", "--config", "fake", "--port", free_port(), env={**env, "S3TVR_TOKEN": token}),
                   "S3TVR_TOKEN is empty")


def test_a_token_with_spaces_around_it_is_refused():
    # An Authorization header's value is stripped: a client could never present it.
    with pytest.raises(InputError, match="whitespace"):
        ServeOptions(token=" s3cret")
    assert ServeOptions(token="s3 cret").token == "s3 cret"



def test_serve_command_takes_allow_origin_and_answers_the_probes(tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    env = {**os.environ}
    env.pop("S3TVR_TOKEN", None)
    with serving("--config", "fake", "--port", port, "--allow-origin", EVIL, "--allow-origin", "*", log=log, env=env, timeout=60):
        served(session(port, EVIL))
        assert get(port, "/healthz")[:2] == (200, "ok") and get(port, "/readyz")[:2] == (200, "ready")
        assert metrics(port)[("s3tvr_sessions_total", ())] == 1
    assert "--allow-origin *" in log.read_text()  # warned
    one_line_error(s3tvr("serve", "--config", "fake", "--port", port, "--allow-origin", "https://app.example/"),
                   "--allow-origin", "https://app.example/", "scheme://host[:port]")
