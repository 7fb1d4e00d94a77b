"""Hypothesis over the WebSocket protocol (docs/serve.md): whatever frames a client sends (text,
JSON or not, nested deep, NaN, huge numbers, any Unicode; binary, empty, odd, random), one real
server over the fake backends answers every bad frame with an error event and a close frame with
a code and reason, never logs a traceback, and goes on serving a well-behaved session beside it."""

import asyncio
import json
import logging
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_serve import Running, exchange, refused
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import HANG_S

END = json.dumps({"type": "end"})
PAIR = "from=es&to=en"
REFUSALS = {1003, 1007, 1008, 1009}  # what a bad frame may earn (docs/serve.md lists them)


class Tracebacks(logging.Handler):
    """Every log record that carries a traceback, or an error, from any thread of the process."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records, self.lock = [], threading.Lock()

    def emit(self, record):
        if record.exc_info or record.levelno >= logging.ERROR or "Traceback" in record.getMessage():
            with self.lock:
                self.records.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture(scope="module")
def server():
    """One server for every example (max_sessions leaves room for the sessions still ending)."""
    running = Running(max_sessions=50)
    watch = Tracebacks()
    logging.getLogger().addHandler(watch)
    yield running, watch
    logging.getLogger().removeHandler(watch)
    running.stop()


def json_values():
    """JSON-ish values: scalars a control message could hold, and containers of them."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=20), st.sampled_from(["end", "stop", "type", ""]))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


unicode = st.characters(blacklist_categories=("Cs",))  # anything a WebSocket text frame can carry (UTF-8: no lone surrogates)
texts = st.one_of(
    st.text(unicode, max_size=40),  # not JSON (mostly)
    json_values().map(json.dumps),
    st.dictionaries(st.sampled_from(["type", "at", "x"]), json_values(), max_size=3).map(json.dumps),
    st.integers(1, 3000).map(lambda n: "[" * n),  # nesting the parser would recurse into; past the length limit too
    # As deep as the length limit allows. (Hypothesis raises the recursion limit while it runs, so the
    # parser's old RecursionError at 990 shows only outside it: test_serve.py sends that frame itself.)
    st.integers(900, 1000).map(lambda n: "[" * n),
    st.integers(1, 500).map(lambda n: "[" * n + "]" * n),  # nested, and valid JSON
    st.integers(1, 1200).map(lambda n: '{"type": ' * n + '"end"' + "}" * n),
    st.sampled_from(['{"type": NaN}', '{"type": "end", "n": Infinity}', '{"type": -Infinity}', '{"type": "end", "n": 1e999}',
                     '{"type": "end", "n": ' + "9" * 990 + "}", '{"type": "end", "type": "end"}', '"\\ud800"',
                     '{"type": "end"' + " " * 990 + "}", '{"type": "\\u0065nd"}', END, " " + END + "\n"]),
)
binaries = st.one_of(
    st.just(b""),
    st.binary(min_size=1, max_size=9),  # odd lengths among them
    st.integers(1, 2000).flatmap(lambda n: st.binary(min_size=2 * n, max_size=2 * n)),  # noise as PCM
    st.integers(1, 3).map(lambda n: b"\0" * (2 * n + 1)),
)
frames = st.lists(st.one_of(texts, binaries), min_size=1, max_size=4)


def is_end(text):
    """The protocol's one control message, by docs/serve.md: {"type": "end"} as JSON, in 1,000
    characters at most (a reference written apart from the server's parser)."""
    def strict(pairs):
        if len(dict(pairs)) < len(pairs):
            raise ValueError("a key twice")
        return dict(pairs)

    def no_constant(name):
        raise ValueError(name)

    try:
        return len(text) <= 1000 and json.loads(text, object_pairs_hook=strict, parse_constant=no_constant) == {"type": "end"}
    except (ValueError, RecursionError):
        return False


def bad(frame):
    """The code a frame must be refused with (0: a good frame; None: some refusal of a text frame)."""
    if isinstance(frame, bytes):
        return 1007 if not frame or len(frame) % 2 else 0
    return 0 if is_end(frame) else None


async def hostile(port, sent):
    """Send the frames up to the first end (then nothing more: a finished session may have closed),
    end it if they did not, and read everything up to the close."""
    for i, frame in enumerate(sent):
        if isinstance(frame, str) and is_end(frame):
            sent = sent[:i + 1]
            break
    else:
        sent = [*sent, END]
    return sent, await exchange(port, PAIR, send=sent)


async def polite(port):
    """A session that does everything right: 0.2 s of silence, end, done, a normal close."""
    return await exchange(port, PAIR, send=[b"\0" * 3200, b"\0" * 3200, END])


@settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                                   HealthCheck.function_scoped_fixture])
@given(frames)
def test_no_frame_breaks_the_server_or_another_session(server, sent):
    running, watch = server

    async def both():
        return await asyncio.wait_for(asyncio.gather(hostile(running.port, sent), polite(running.port)), HANG_S)

    (sent, got), good = asyncio.run(both())
    assert got.events and got.events[0]["type"] == "ready", got
    first_bad = next((bad(f) for f in sent if bad(f) != 0), 0)
    if first_bad == 0:  # every frame was audio or the end: served
        assert got.code == 1000 and [e["type"] for e in got.events][-1] == "done", (sent, got)
    else:  # a bad frame: the reason, as an error event and in the close frame
        assert got.code in REFUSALS and got.code == (first_bad or got.code) and got.reason, (sent, got)
        refused(got, got.code)
    assert good.code == 1000 and [e["type"] for e in good.events] == ["ready", "done"], good
    assert not watch.records, watch.records


def test_after_the_fuzz_the_server_is_idle_and_serves(server):
    running, watch = server
    assert running.idle(timeout=10)

    async def session():
        async with connect(f"{running.url}?{PAIR}", compression=None) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
            await ws.send(b"\0" * 3200)
            await ws.send(END)
            events = []
            try:
                async for message in ws:
                    events.append(json.loads(message))
            except ConnectionClosed:
                pass
            return events, ws.close_code

    events, code = asyncio.run(asyncio.wait_for(session(), HANG_S))
    assert code == 1000 and events[-1]["type"] == "done" and not watch.records
