"""One WebSocket connection of ``s3tvr serve``: admitted or refused, then its session.

The session's blocking ``run()`` has a thread of its own, so neither a slow session nor a slow
client holds up the event loop or another session; three tasks on the loop read the client's
frames, send the translation, and watch that the client keeps reading. Whatever a client sends,
the worst it gets is its own connection closed with a code and a one-line reason (docs/serve.md, the WebSocket protocol).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, Optional, Protocol, Sequence

from starlette.websockets import WebSocket, WebSocketDisconnect

from s3tvr import edited_json
from s3tvr.audio import SAMPLE_RATE
from s3tvr.backends.kinds import VoiceNotYours
from s3tvr.errors import InputError, S3tvrError, brief
from s3tvr.latency.record import UtteranceRecord
from s3tvr.serve.metrics import SourceRecords
from s3tvr.serve.transport import Refusal, WebSocketSink, WebSocketSource, unread_reason
from s3tvr.text import glossary

if TYPE_CHECKING:
    from s3tvr.live.session import Session

log = logging.getLogger(__name__)

MAX_FRAME = 1 << 20  # bytes a client frame may have
CLOSE_TIMEOUT_S = 5.0  # a refused client that does not read its close frame is left after this
FINISH_TIMEOUT_S = 60.0  # after done: how long the last frames may take to leave
WATCH_S = 0.25  # how often a connection's unread audio is looked at
# A client sends audio all the time, silence included: one that goes quiet holds a session (of
# --max-sessions) that others could use. After "end" it only waits, so then there is no limit.
IDLE_S = 30.0
MAX_TEXT = 1000  # characters a client's text frame may have: its one control message needs 15
END = '{"type": "end"}'


class _Gone(Exception):
    """The client went away: nothing more can be said to it."""


def control_message(text: str) -> dict:
    """A client's text frame as the control message it must be, ``{"type": "end"}``, or a
    :class:`Refusal` saying what is wrong: 1009 over MAX_TEXT characters; 1007 no JSON, or JSON
    a control message never is (nested, NaN or Infinity, a number beyond a float's range, a key
    twice); 1003 JSON that is not the one message a client sends. The nesting is measured before
    the parser sees it, so no frame can make it recurse."""
    if len(text) > MAX_TEXT:
        raise Refusal(1009, f"a text frame of {len(text)} characters: a control message ({END}) has at most {MAX_TEXT}")
    depth = edited_json.depth(text.encode())  # measured before the parser can recurse
    if depth > 1:
        raise Refusal(1007, f"a text frame nested {depth} deep: a control message is a flat JSON object, {END}")
    try:
        message = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        why = exc.args[0] if isinstance(exc, _NotControl) else "not JSON"
        raise Refusal(1007, f"a text frame that is {why}: the only one a client sends is {END}") from None
    if message != {"type": "end"}:
        raise Refusal(1003, f"unsupported text frame: the only one a client sends is {END}")
    return message


class _NotControl(ValueError):
    """JSON that no control message is (the reason in words)."""


def _no_constant(name: str) -> None:
    raise _NotControl(f"{name}, which is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotControl("a number beyond a float's range")
    return value


def _unique_keys(pairs: list) -> dict:
    message = dict(pairs)
    if len(message) < len(pairs):
        raise _NotControl("an object with a key twice")
    return message


def close_reason(reason: str) -> str:
    """A close frame's reason: at most 123 bytes of UTF-8, cut at a character."""
    data = reason.encode()
    return reason if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."


class Host(Protocol):
    """What a connection needs of its server (:class:`~s3tvr.serve.server.Server`), and nothing
    more: the server keeps its counts and rules to itself."""

    max_ahead_s: float  # a client's burst ahead of real time
    max_unread_s: float  # translated audio a client may leave unread
    output_rate: int  # of the translation's audio
    talk: tuple[str, ...]  # a conversation's two languages (serve --talk): each utterance's is detected; () otherwise

    def admit(self, ws: WebSocket) -> tuple[str, str, str]: ...  # (from, to, speaker), a place taken; or Refusal
    def session(self, id: str, **kwargs: Any) -> Session: ...
    def release(self) -> None: ...  # the place taken by admit() is free again
    def closed(self, code: int) -> None: ...
    def recorded(self, id: str, rec: UtteranceRecord, source: Sequence[UtteranceRecord]) -> None: ...  # on the session's thread
    def occupancy(self) -> str: ...  # "sessions/most", for the log


class Connection:
    """One client: admitted (or refused), its session run on a thread, the frames in both directions."""

    def __init__(self, server: Host, ws: WebSocket):
        self.server, self.ws = server, ws
        client = ws.client
        self.peer = f"{client.host}:{client.port}" if client else "a client"
        self.id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        self.name = f"refused {self.peer}"  # what the log calls it: the session's id once it has one
        self.loop = asyncio.get_running_loop()
        self.outbox: asyncio.Queue = asyncio.Queue()  # (kind, payload, samples of audio) to send, in order
        self.failure: asyncio.Future = self.loop.create_future()  # a refusal raised on the session's thread
        self.ended = False  # the client sent end
        self.utterances = 0
        self.sources = SourceRecords()  # the records of the source utterance being spoken (simultaneous mode's clauses)

    async def run(self) -> None:
        server = self.server
        try:
            src, tgt, speaker = server.admit(self.ws)
            try:
                session = self._open(src, tgt, speaker)
            except BaseException:
                server.release()
                raise
        except Refusal as refusal:
            await self._refuse(refusal)
            return
        self.name = f"session {self.id}"
        log.info("session %s: %s -> %s for %s (%s)", self.id, src, tgt, self.peer, server.occupancy())
        await self._serve(session, src, tgt)

    def _open(self, src: str, tgt: str, speaker: str) -> Session:
        server = self.server
        self.source = WebSocketSource(f"the connection from {self.peer}", server.max_ahead_s)
        self.sink = WebSocketSink(self._post, server.output_rate, server.max_unread_s, on_unread=self._unread)
        try:
            own = self.ws.query_params.get("glossary")  # this session's words, instead of the server's
            extra = {"glossary": glossary.from_query(own)} if own is not None else {}
            return server.session(self.id, source=self.source, sink=self.sink, on_record=self._record, speaker=speaker,
                                  src_lang=src, tgt_lang=tgt, **extra)
        except VoiceNotYours as exc:
            raise Refusal(1008, str(exc)) from None
        except InputError as exc:
            raise Refusal(4400, str(exc)) from None
        except S3tvrError as exc:
            raise Refusal(1011, f"the session could not start: {exc}") from None
        except Exception as exc:  # a bug: this client is told, the server goes on
            log.error("%s could not start", self.name, exc_info=exc)
            raise Refusal(1011, f"the session could not start: {brief(exc)}") from None

    async def _serve(self, session: Session, src: str, tgt: str) -> None:
        try:
            await self.ws.send_text(json.dumps({"type": "ready", "session": self.id, "sample_rate": self.server.output_rate,
                                                "input_rate": SAMPLE_RATE, "from": src, "to": tgt,
                                                **({"talk": list(self.server.talk)} if self.server.talk else {})}))
        except BaseException as exc:
            self.server.release()  # no thread has taken the place
            if isinstance(exc, (WebSocketDisconnect, OSError, RuntimeError)):
                log.info("%s: the client left before it started", self.name)
                return
            raise
        self.source.start()
        done = self._in_thread(session.run)
        tasks = [asyncio.ensure_future(t) for t in (self._receive(), self._send(), self._watch())]
        receiver, sender, _ = tasks
        waiting: set = {done, self.failure, *tasks}
        refusal: Optional[Refusal] = None
        deadline = None
        try:
            while True:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                finished, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not finished:
                    log.warning("%s: the last frames did not leave in %.0f s: connection left", self.name, FINISH_TIMEOUT_S)
                    return
                if done in finished:  # the session is over: done, then a normal close after everything queued
                    waiting.discard(done)
                    result = self._result(done)
                    self._post("text", json.dumps({"type": "done", "utterances": self.utterances, "spoken": result.spoken,
                                                   "failed": result.failed}), 0)
                    self._post("close", (1000, ""), 0)
                    deadline = time.monotonic() + FINISH_TIMEOUT_S
                    continue
                if sender in finished:
                    sender.result()  # _Gone if it could not send
                    self.server.closed(1000)
                    log.info("session %s: done (%d utterances)", self.id, self.utterances)
                    return
                for task in finished:
                    task.result()  # a refusal raises; the receiver returns when the client left
                log.info("session %s: the client left%s", self.id, "" if done.done() else ": cancelled")
                return
        except Refusal as exc:
            refusal = exc
        except _Gone:
            log.info("session %s: the client left", self.id)
        except Exception as exc:  # a bug: this client is told, the server goes on
            log.error("session %s: closed by an internal error", self.id, exc_info=exc)
            refusal = Refusal(1011, f"internal error: {brief(exc)}")
        finally:
            session.cancel()
            self.sink.cancel()
            self.source.close()
            for task in tasks:
                task.cancel()
            if refusal is not None:
                await self._refuse(refusal)
            await asyncio.wait({done})  # the thread ends within about a second of cancel()

    def _result(self, done: asyncio.Future) -> Any:
        try:
            return done.result()
        except VoiceNotYours as exc:  # another owner claimed the name between the check and the voice
            raise Refusal(1008, str(exc)) from None
        except S3tvrError as exc:
            raise Refusal(1011, f"the session failed: {exc}") from None
        except Exception as exc:
            log.error("session %s failed", self.id, exc_info=exc)
            raise Refusal(1011, f"the session failed: {brief(exc)}") from None

    def _in_thread(self, run: Any) -> asyncio.Future:
        """``run()`` on a thread of its own; its slot is given back when the thread ends."""
        future = self.loop.create_future()

        def settle(result: Any, error: Optional[BaseException]) -> None:
            self.server.release()
            if not future.done():
                future.set_exception(error) if error is not None else future.set_result(result)

        def target() -> None:
            result, error = None, None
            try:
                result = run()
            except BaseException as exc:  # reported on the event loop
                error = exc
            try:
                self.loop.call_soon_threadsafe(settle, result, error)
            except RuntimeError:  # the loop is closed: the server has stopped
                pass

        threading.Thread(target=target, name=f"s3tvr-session-{self.id}", daemon=True).start()
        return future

    # -- the session's thread to the loop ----------------------------------------------------

    def _post(self, kind: str, payload: Any, samples: int) -> None:
        try:
            self.loop.call_soon_threadsafe(self.outbox.put_nowait, (kind, payload, samples))
        except RuntimeError:  # the loop is closed: nobody to send to
            pass

    def _unread(self, reason: str) -> None:
        def fail() -> None:
            if not self.failure.done():
                self.failure.set_exception(Refusal(1008, reason))
        try:
            self.loop.call_soon_threadsafe(fail)
        except RuntimeError:
            pass

    def _record(self, rec: UtteranceRecord) -> None:
        self.utterances += 1
        self.server.recorded(self.id, rec, self.sources.add(rec))
        if rec.error:
            self.sink.event({"type": "error", "message": f"utterance {rec.utt_id} failed: {rec.error}"})
        self.sink.event({"type": "latency", "record": rec.to_json()})  # the log line's object: the protocol's

    # -- the event loop's tasks --------------------------------------------------------------

    async def _receive(self) -> None:
        """The client's frames into the source until it leaves (returns) or breaks a rule (Refusal).
        Only audio keeps it from being idle: no other frame resets the clock."""
        heard_at = time.monotonic()
        while True:
            timeout = None if self.ended else max(0.0, heard_at + IDLE_S - time.monotonic())
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout)
            except asyncio.TimeoutError:
                raise Refusal(1008, f"nothing received for {IDLE_S:g} s: send audio (silence too) at real-time pace, "
                                    "and end with {\"type\": \"end\"}") from None
            if message["type"] == "websocket.disconnect":
                return
            data, text = message.get("bytes"), message.get("text")
            if data is not None:
                await self._audio(data)
                heard_at = time.monotonic()
            elif text is not None:
                self._text(text)

    async def _audio(self, data: bytes) -> None:
        if len(data) > MAX_FRAME:
            raise Refusal(1009, f"a frame of {len(data)} bytes: at most {MAX_FRAME} (1 MiB) per frame")
        if not data:
            raise Refusal(1007, "an empty binary frame: each one carries audio, PCM s16le (2 bytes a sample)")
        if len(data) % 2:
            raise Refusal(1007, f"PCM s16le has 2 bytes per sample, but this frame has {len(data)} bytes")
        # After end nothing more is heard, but each frame is still counted against --max-ahead.
        while not self.source.push(data):  # the feeder is behind: stop reading until it catches up
            await asyncio.sleep(0.02)

    def _text(self, text: str) -> None:
        control_message(text)  # {"type": "end"}, the only one there is, or a Refusal
        if not self.ended:
            self.ended = True
            self.source.end()

    async def _send(self) -> None:
        while True:
            kind, payload, samples = await self.outbox.get()
            try:
                if kind == "bytes":
                    await self.ws.send_bytes(payload)
                    self.sink.sent(samples)
                elif kind == "text":
                    await self.ws.send_text(payload)
                else:
                    await self.ws.close(*payload)
                    return
            except (WebSocketDisconnect, OSError, RuntimeError) as exc:
                raise _Gone() from exc

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            unread = self.sink.unread_s()
            if unread > self.server.max_unread_s:
                raise Refusal(1008, unread_reason(unread, self.server.max_unread_s))

    async def _refuse(self, refusal: Refusal) -> None:
        """The reason as an error event and as the close frame's; never waits long on the client."""
        log.warning("%s: closed %d: %s", self.name, refusal.code, refusal.reason)
        self.server.closed(refusal.code)
        await send_refusal(self.ws, refusal)


async def send_refusal(ws: WebSocket, refusal: Refusal) -> None:
    """The reason as an error event and as the close frame's; never waits long on the client."""
    async def say() -> None:
        await ws.send_text(json.dumps({"type": "error", "message": refusal.reason}, ensure_ascii=False))
        await ws.close(refusal.code, close_reason(refusal.reason))

    try:
        await asyncio.wait_for(say(), CLOSE_TIMEOUT_S)
    except (asyncio.TimeoutError, WebSocketDisconnect, OSError, RuntimeError):
        pass
