"""``s3tvr serve --ray ADDRESS --replicas N`` (docs/ray.md): a real local Ray
cluster (one head, 2 CPUs), two replicas over the fake backends behind the routing front, real
clients. One replica is killed mid-session: its clients are told to reconnect and finish on the
other; the other's clients never notice; the front's caption overlay, health and metrics cover
every replica's sessions."""

import asyncio
import collections
import contextlib
import json
import os
import socket
import subprocess
import time

import numpy as np
import pytest
import test_browser
from test_captions import watch
from test_serve_access import get, metrics

from s3tvr.audio.decode import load_audio
from s3tvr.serve import client

from conftest import HANG_S, free_port, one_line_error, ray_env, s3tvr, s3tvr_cmd, serving

CLIP = "fleurs-es-002.ogg"  # 9.7 s, one utterance (speech 2.1-9.0 s)

pytestmark = pytest.mark.slow
browser = test_browser.browser  # headless Chromium whose microphone plays a Spanish clip: a fixture here too
wait_for = test_browser.wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A one-node Ray cluster of our own (its own ports and temp dir: another may run on this
    machine), stopped by ending its process, never by ``ray stop`` (that would stop every cluster here)."""
    ray = pytest.importorskip("ray")
    port = free_port()
    env = ray_env()
    ports = ["--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
             "--min-worker-port", "0", "--max-worker-port", "0"]
    temp = f"/tmp/ray-s3tvr-{os.getpid()}"  # short: Ray's socket paths must fit in 107 bytes
    log = tmp_path_factory.mktemp("ray") / "head.log"
    with open(log, "wb") as f:
        head = subprocess.Popen([os.path.join(os.path.dirname(s3tvr_cmd()[0]), "ray"), "start", "--head", "--block", "--port", str(port),
                                 "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard=false",
                                 "--disable-usage-stats", "--temp-dir", temp, *ports],
                                stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + HANG_S
        while not _listens(port):
            assert head.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        address = f"127.0.0.1:{port}"
        with pytest.MonkeyPatch.context() as patch:
            for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
                patch.setenv(key, env[key])
            from ray._raylet import Config  # Ray reads RAY_AUTH_MODE once per process: read it again, as ray.init does
            Config.initialize("")
            ray.init(address=address, namespace="s3tvr", log_to_driver=False)
            yield address, env
    finally:
        if ray.is_initialized():
            ray.shutdown()
        head.terminate()  # ray start --block stops what it started
        try:
            head.wait(timeout=HANG_S)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, 9)  # whatever is left of its process group
            head.wait()


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_sessions_spread_over_replicas_and_a_lost_replica_only_sends_its_own_clients_elsewhere(cluster, data, tmp_path):
    import ray

    address, env = cluster
    port = free_port()
    speech = load_audio(data / CLIP)
    # Each client's own utterance: the speech cut at its own point, then silence: the fake ASR
    # says how long the utterance it heard lasted, so each text is that client's alone.
    cuts = [6.0, 7.0, 8.0, 9.0]
    inputs = [np.concatenate([speech[:int(c * 16000)], np.zeros(24000, np.float32)]) for c in cuts]
    with serving("--ray", address, "--replicas", 2, "--max-sessions", 4, "--config", "fake", "--port", port,
                 "--log-dir", tmp_path / "logs", log=tmp_path / "serve.log", env=env, timeout=HANG_S) as proc:
        readies = [asyncio.Event() for _ in inputs]
        started: dict[int, str] = {}  # client: the replica of its first session

        def on_event(i: int, event: dict) -> None:
            if event["type"] == "ready" and i not in started:
                started[i] = event["replica"]
                readies[i].set()

        async def kill() -> str:
            await asyncio.gather(*(r.wait() for r in readies))  # every session has started
            await asyncio.sleep(1.0)  # and is streaming
            lost = started[0]
            handle = ray.get_actor(f"replica-{port}-{lost.split('.')[0]}", namespace="s3tvr")
            await asyncio.to_thread(ray.kill, handle, no_restart=False)  # as a crash: Ray restarts it
            return lost

        async def main():
            killer = asyncio.ensure_future(kill())
            results = await asyncio.gather(*(client.stream_file(f"ws://127.0.0.1:{port}/ws", audio, "es", "en",
                                                                on_event=lambda e, i=i: on_event(i, e))
                                             for i, audio in enumerate(inputs)))
            return results, await killer

        results, lost = asyncio.run(asyncio.wait_for(main(), HANG_S))
        first = [r.replicas[0] for r in results]
        # Spread: two sessions on each replica (the front sends each to the one with most room).
        assert sorted(collections.Counter(first).values()) == [2, 2], first
        assert lost == first[0]
        for result in results:
            assert result.ok, result.summary()  # done, then a normal close: every session finished
            texts = [u["tgt_text"] for u in result.utterances]
            if result.replicas[0] == lost:  # told to reconnect, went on on the other replica
                assert result.reconnects == 1 and len(result.replicas) == 2, (result.replicas, result.close_reason)
                assert result.replicas[1] != lost and result.replicas[1] in first, result.replicas
                assert any(e.get("type") == "ready" for e in result.events[1:])
            else:  # undisturbed: one session, one utterance, its own text
                assert result.reconnects == 0 and len(result.replicas) == 1
                assert len(texts) == 1 and texts[0].startswith("[en] utterance 0 lasting"), texts
            assert texts and all(t.startswith("[en] utterance") for t in texts), texts
        undisturbed = [r.utterances[0]["tgt_text"] for r in results if r.replicas[0] != lost]
        assert len(set(undisturbed)) == len(undisturbed) == 2, undisturbed  # each its own translation
        # Ray restarts the lost replica and the front takes it back.
        deadline = time.monotonic() + HANG_S
        while "back on" not in (tmp_path / "serve.log").read_text():
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        log = (tmp_path / "serve.log").read_text()
        assert f"replica {lost} lost" in log and "Traceback" not in log, log
        # Each session's latency log, in --log-dir (made by the replicas, on their node: here this one).
        # The lost sessions had heard no whole utterance: nothing to log.
        finished = {r.session for r in results}
        assert len(finished) == 4 and finished <= {p.stem for p in (tmp_path / "logs").glob("*.jsonl")}, finished
        # The front's caption overlay follows every replica's sessions: each one's lines, by its id.
        status, page, _ = get(port, "/captions")
        assert status == 200 and "/static/captions.js" in page
        for result in results:
            [first], _, _ = asyncio.run(watch(port, f"session={result.session}", lambda m: len(m) >= 1))
            assert first["type"] == "captions" and first["session"] == result.session, first
            assert [c["tgt_text"] for c in first["lines"]] == [u["tgt_text"] for u in result.utterances], first
        # Its health and metrics are the cluster's, as one server's: six sessions (four, and the two
        # that went on elsewhere), two closed 1012, four 1000, each utterance's latency observed.
        assert get(port, "/healthz")[:2] == (200, "ok") and get(port, "/readyz")[:2] == (200, "ready")
        counts = metrics(port)
        spoken = [r for result in results for r in result.records if r.latency_s is not None]
        assert counts[("s3tvr_sessions_total", ())] == 6 and counts[("s3tvr_sessions_active", ())] == 0, counts
        assert counts[("s3tvr_closes_total", (("code", "1012"),))] == 2 and counts[("s3tvr_closes_total", (("code", "1000"),))] == 4
        assert counts[("s3tvr_first_audio_seconds_count", ())] == len(spoken) >= 4
        assert counts[("s3tvr_end_offset_seconds_count", ())] >= 4



def test_a_full_set_of_replicas_refuses_with_1013_and_a_replicas_own_refusal_passes_through(cluster, tmp_path):
    from test_serve import exchange, refused
    from websockets.asyncio.client import connect

    address, env = cluster
    port = free_port()
    ok = "from=es&to=en&token=s3cret"
    with serving("--ray", address, "--replicas", 2, "--max-sessions", 1, "--token", "s3cret", "--config", "fake", "--port", port,
                 log=tmp_path / "serve.log", env=env, timeout=HANG_S):

        async def main():
            held = [await connect(f"ws://127.0.0.1:{port}/ws?{ok}") for _ in range(2)]  # one on each replica
            replicas = {json.loads(await ws.recv())["replica"] for ws in held}
            full = await exchange(port, ok, send=[b"\0\0"])
            unready = await asyncio.to_thread(get, port, "/readyz")
            for ws in held:
                await ws.close()
            wrong = await exchange(port, "from=es&to=en&token=guess", send=[b"\0\0"])
            # the replicas hear the front, not the page: the front asks where the page comes from
            evil = await exchange(port, ok, send=[b"\0\0"], headers={"Origin": "http://evil.example"})
            while (pair := await exchange(port, "from=de&to=en&token=s3cret", send=[b"\0\0"])).code == 1013:
                await asyncio.sleep(0.1)
            while (after := await exchange(port, ok, send=[json.dumps({"type": "end"})])).code == 1013:
                await asyncio.sleep(0.1)  # the front gives the places back once their relays have ended
            return replicas, full, unready, wrong, evil, pair, after

        replicas, full, unready, wrong, evil, pair, after = asyncio.run(asyncio.wait_for(main(), HANG_S))
        assert len(replicas) == 2, replicas
        refused(full, 1013, "every replica is busy", "--max-sessions 1")
        refused(wrong, 1008, "wrong token")  # checked before the room: a client without it learns nothing
        refused(evil, 1008, "may not use this server", "--allow-origin http://evil.example")
        refused(pair, 4400, "not de->en")  # the replica's own refusal, relayed as it gave it
        assert after.code == 1000 and after.events[0]["type"] == "ready" and after.events[-1]["type"] == "done", after
        assert unready[:2] == (503, "full: 2 of 2 replicas up, --max-sessions 1 each"), unready
        counts = metrics(port)  # each refusal counted by the check that refused it, the replica's 4400 too
        for reason in ("origin", "token", "busy", "query"):
            assert counts[("s3tvr_refusals_total", (("reason", reason),))] >= 1, (reason, counts)


def test_no_cluster_at_the_address_and_replicas_without_ray_are_one_line_errors():
    proc = s3tvr("serve", "--ray", f"127.0.0.1:{free_port()}", "--config", "fake", "--port", 0)
    one_line_error(proc, "no Ray cluster at 127.0.0.1:", "ray start --head")
    one_line_error(s3tvr("serve", "--replicas", 3, "--config", "fake", "--port", 0), "--replicas", "add --ray")
    one_line_error(s3tvr("serve", "--ray", "auto", "--replicas", 0, "--config", "fake", "--port", 0), "--replicas must be at least 1")


def test_the_page_goes_on_on_another_replica_when_its_own_is_lost(cluster, browser, tmp_path):
    import ray
    from selenium.webdriver.common.by import By

    address, env = cluster
    port = free_port()
    with serving("--ray", address, "--replicas", 2, "--config", "fake", "--port", port, log=tmp_path / "serve.log", env=env,
                 timeout=HANG_S):
        browser.get(f"http://127.0.0.1:{port}/")
        browser.find_element(By.ID, "start").click()
        h = wait_for(browser, "start a session", lambda h: h["state"] == "running" and h["replica"], timeout=HANG_S)
        lost, session = h["replica"], h["session"]
        ray.kill(ray.get_actor(f"replica-{port}-{lost.split('.')[0]}", namespace="s3tvr"), no_restart=False)
        h = wait_for(browser, "go on in a session on another replica",
                     lambda h: h["reconnects"] == 1 and h["session"] not in (None, session) and h["state"] == "running", timeout=HANG_S)
        assert h["replica"] != lost and h["closeCode"] is None, h
        # The microphone goes on to the new session: its own captions.
        h = wait_for(browser, "show a caption of the new session", lambda h: any(c["session"] == h["session"] for c in h["captions"]),
                     timeout=HANG_S)
        assert h["captions"][-1]["tgt"].startswith("[en] utterance"), h["captions"]
