"""One WebSocket connection's audio ends, between the event loop that owns the socket and the
session's threads (docs/serve.md, the WebSocket protocol).

:class:`WebSocketSource` is fed PCM frames on the event loop and yields 16 kHz blocks to the
session's feeder thread; :class:`WebSocketSink` takes the session's translated chunks on its
thread and hands PCM frames and events to the event loop. Neither ever blocks the loop, and the
sink never blocks the session: a client that stops reading is dropped, never waited for.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from typing import Any, Callable, Iterator, Optional

import numpy as np

from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.streams import Reblocker
from s3tvr.live.messages import DROPPED_TAIL, AudioChunk, Block, UttInfo
from s3tvr.live.sinks import Sink
from s3tvr.live.sources import Source

log = logging.getLogger(__name__)

FRAME_S = 0.5  # longest binary frame sent: small enough for any client's message limit (websockets: 1 MiB)
# Each frame received counts as at least this much audio against --max-ahead: a flood of tiny
# frames (each costs the server as much as a large one) is refused as a flood of audio is. Clients
# send 100 ms frames (the page, s3tvr client), a shorter last one; a microphone's buffer is 8 ms or more.
MIN_FRAME_S = 0.005


class Refusal(Exception):
    """A connection refused or closed for a reason the client must hear: the close code and its
    one-line reason (docs/serve.md, the WebSocket protocol lists them)."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def unread_reason(unread_s: float, max_unread_s: float) -> str:
    return (f"the client stopped reading: its unread translation is {unread_s:.1f} s behind what it would have heard, "
            f"at most {max_unread_s:g} s")


def _plain(value: Any) -> Any:
    """JSON for what json does not know (a numpy number in a record)."""
    return value.item() if hasattr(value, "item") else str(value)


def pcm_to_float(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm(samples: np.ndarray) -> bytes:
    return np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class WebSocketSource(Source):
    """The client's microphone (or file) as a source: PCM s16le frames pushed by the event loop,
    yielded as 512-sample blocks stamped when their frame arrived.

    Two bounds: the client may be at most ``max_ahead_s`` ahead of real time since the connection
    opened (more is a :class:`Refusal`, 1008), every frame counted as at least MIN_FRAME_S of audio,
    after the end too; and at most ``max_buffer_s`` of audio waits for the feeder (more: :meth:`push`
    says so, and the loop stops reading the socket until there is room).
    """

    # Not a microphone to the session (never gated half-duplex): the client plays the translation itself.

    def __init__(self, name: str = "the connection", max_ahead_s: float = 10.0, max_buffer_s: float = 60.0):
        self.name = name
        self.max_ahead_s = max_ahead_s
        self.max_buffer = int(max_buffer_s * SAMPLE_RATE)
        self.overflows = 0
        self.received = 0  # samples
        self.charged = 0  # samples counted against max_ahead_s: received, each frame at least MIN_FRAME_S
        self._t_open: Optional[float] = None
        self._cond = threading.Condition()
        self._pieces: collections.deque = collections.deque()  # (samples, t_arrival)
        self._buffered = 0
        self._ended = False
        self._closed = False

    def start(self, now: Optional[float] = None) -> None:
        """Real time starts now (the session is ready): the pace of what arrives is measured from here."""
        self._t_open = time.monotonic() if now is None else now

    def ahead_s(self, now: Optional[float] = None) -> float:
        """How far the audio received (each frame at least MIN_FRAME_S) is ahead of real time since :meth:`start`."""
        now = time.monotonic() if now is None else now
        return self.charged / SAMPLE_RATE - (now - (self._t_open if self._t_open is not None else now))

    def push(self, data: bytes) -> bool:
        """Queue one frame of PCM s16le (the caller checked its length is even and not 0). False:
        the buffer is full, push it again later. Raises Refusal when the client is too far ahead of
        real time, a frame counted as at least MIN_FRAME_S."""
        n = len(data) // 2
        cost = max(n, int(MIN_FRAME_S * SAMPLE_RATE))
        now = time.monotonic()
        ahead = self.ahead_s(now) + cost / SAMPLE_RATE
        if ahead > self.max_ahead_s:
            short = f"; a frame counts as {MIN_FRAME_S * 1000:g} ms at least" if cost > n else ""
            raise Refusal(1008, f"audio far faster than real time: {ahead:.1f} s ahead, at most {self.max_ahead_s:g} s{short}; "
                                f"send it at real-time pace")
        with self._cond:
            if self._closed or self._ended:
                self.charged += cost  # nobody will read it: taken and dropped, but counted
                return True
            if self._buffered and self._buffered + n > self.max_buffer:
                return False
            self._pieces.append((pcm_to_float(data), now))
            self._buffered += n
            self.received += n
            self.charged += cost
            self._cond.notify()
        return True

    def end(self) -> None:
        """The input is over: :meth:`blocks` ends once what is buffered has been yielded."""
        with self._cond:
            self._ended = True
            self._cond.notify()

    def blocks(self, stop: threading.Event) -> Iterator[Block]:
        blocks = Reblocker()
        t = time.monotonic()
        while True:
            with self._cond:
                while not (self._pieces or self._ended or self._closed or stop.is_set()):
                    self._cond.wait(0.05)  # the stop event cannot wake a condition: look again soon
                if stop.is_set() or self._closed:
                    return
                if not self._pieces:
                    break  # ended, all yielded
                pieces = list(self._pieces)
                self._pieces.clear()
                self._buffered = 0
            for samples, t in pieces:
                for block in blocks.push(samples):
                    if stop.is_set():
                        return
                    yield Block(block, t)
        rest = blocks.rest()
        if len(rest):  # the last, shorter block, as a file's
            yield Block(rest, t)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pieces.clear()
            self._buffered = 0
            self._cond.notify()


class WebSocketSink(Sink):
    """The translation to a client that plays it back to back: each chunk resampled to
    ``sample_rate`` (gapless across chunks), as PCM s16le frames handed to the event loop through
    ``post`` (called with ``(kind, payload, samples)``, kind "bytes" or "text"; it must not block),
    an ``utterance`` event before each utterance's first audio.

    Its listener clock plays back to back, as a file's does: what that client hears. An utterance
    is reported by :meth:`finished` once it has been heard (the end of its last chunk).

    Audio posted but not yet taken by the connection (:meth:`sent` says what was) is unread; the
    connection drops a client whose unread audio is more than ``max_unread_s`` behind what it would
    have heard by now (:meth:`unread_s`). Should it not yet have done so at twice that,
    ``on_unread(reason)`` is called once and everything after is dropped: the session is never held
    up by a client that stops reading, and what waits for it is bounded.
    """

    def __init__(self, post: Callable[[str, Any, int], None], sample_rate: int = 24000, max_unread_s: float = 30.0,
                 on_unread: Callable[[str], None] = lambda reason: None):
        super().__init__(sample_rate)
        self.post = post
        self.max_unread_s = max_unread_s
        self.on_unread = on_unread
        self._lock = threading.Lock()
        self._unsent = 0  # samples posted, not yet sent (whole numbers: the sum comes back to exactly 0)
        self._announced: set[int] = set()
        self._stopped = threading.Event()

    def write(self, chunk: AudioChunk) -> None:
        if self._stopped.is_set():
            return
        if chunk.utt.utt_id not in self._announced:
            self._announce(chunk.utt)
        super().write(chunk)

    def _announce(self, utt: UttInfo) -> None:
        self._announced.add(utt.utt_id)
        self.event({"type": "utterance", "utt_id": utt.utt_id, "source_id": utt.utt_id if utt.source_id is None else utt.source_id,
                    "src_lang": utt.src_lang, "tgt_lang": utt.tgt_lang, "src_text": utt.src_text, "tgt_text": utt.tgt_text})

    def _play(self, utt: UttInfo, samples: np.ndarray) -> None:
        if not len(samples) or self._stopped.is_set():
            return
        unread = self.unread_s()
        if unread > 2 * self.max_unread_s:
            self._stopped.set()
            self.on_unread(unread_reason(unread, self.max_unread_s))
            return
        self.clock.play(utt, len(samples) / self.rate)
        pcm = float_to_pcm(samples)
        step = 2 * int(FRAME_S * self.rate)
        for i in range(0, len(pcm), step):
            frame = pcm[i:i + step]
            self._post("bytes", frame, len(frame) // 2)

    def event(self, message: dict[str, Any]) -> None:
        """A JSON event, in order with the audio around it."""
        if not self._stopped.is_set():
            self._post("text", json.dumps(message, ensure_ascii=False, default=_plain), 0)

    def _post(self, kind: str, payload: Any, samples: int) -> None:
        with self._lock:
            self._unsent += samples
        self.post(kind, payload, samples)

    def sent(self, samples: int) -> None:
        """The connection took ``samples`` of audio (called on the event loop)."""
        with self._lock:
            self._unsent = max(0, self._unsent - samples)

    def unsent_s(self) -> float:
        with self._lock:
            return self._unsent / self.rate

    def unread_s(self) -> float:
        """How far the client is behind in reading: the audio it has not taken that a listener
        playing it back to back would have heard by now. A client that reads as it plays stays at
        or under 0 however long the utterances; one that stopped falls behind by a second a second."""
        return self.unsent_s() - self.backlog_s()

    def end(self, utt: UttInfo) -> None:
        super().end(utt)
        if (utt.utt_id not in self._announced and not utt.error and utt.skipped != DROPPED_TAIL
                and (utt.src_text or utt.tgt_text)):
            self._announce(utt)  # heard and translated, but nothing to say aloud: the captions still show it
        self._announced.discard(utt.utt_id)

    def finished(self) -> list[UttInfo]:
        return self.clock.finished(all=self._stopped.is_set())  # stopped: nobody will hear the rest

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until everything written has been sent and heard (or the sink was stopped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopped.is_set():
            if self.unsent_s() <= 0 and self.backlog_s() <= 0:
                return
            self._stopped.wait(0.02)

    def cancel(self) -> None:
        """Stop now (the connection is gone or refused): nothing more is posted, drain returns."""
        self._stopped.set()

    def close(self, abort: bool = False) -> None:
        pass  # what was posted is the connection's to send

    def discard(self) -> None:
        pass
