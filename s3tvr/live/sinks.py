"""Where translated speech goes: the speaker, a file, or both (and, in ``s3tvr serve``, a
WebSocket client: :class:`s3tvr.serve.transport.WebSocketSink`).

A sink receives the chunks of each utterance in spoken order (the session's reorderer sees to
that), then ``end(utt)``. Every sink keeps one :class:`ListenerClock`, the only place the times of
what a listener heard are stamped on an utterance: ``played`` (each chunk: when it starts playing,
and its seconds), ``t_first_audio`` (the first chunk's start) and ``t_play_end`` (the last one's
end). The sink reports an utterance through ``finished()`` once it has been heard, so the session
can log it; ``backlog_s()`` (audio written but not heard yet) is what lag control reads.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np

from s3tvr.audio import devices
from s3tvr.audio.echo import EchoGuard
from s3tvr.audio.streams import Resampler
from s3tvr.files import SoundFileWriter
from s3tvr.live.messages import AudioChunk, UttInfo
from s3tvr.live.sources import Source

log = logging.getLogger(__name__)


class ListenerClock:
    """When the listener hears each chunk of translated speech, stamped on its utterance.

    A sink that plays back to back (a file as replayed, a WebSocket client) asks :meth:`play`: a
    chunk starts once it is written and once the chunk before it has finished. A speaker knows the
    moment itself (:meth:`heard`). Utterances come back from :meth:`finished` once heard whole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heard_until = 0.0  # wall clock when the last chunk stamped finishes playing
        self._done: collections.deque = collections.deque()  # (when heard whole, utt), in spoken order

    def play(self, utt: UttInfo, seconds: float) -> float:
        """A chunk of ``seconds`` played back to back: stamped and returned when it starts."""
        return self.heard(utt, max(time.monotonic(), self._heard_until), seconds)

    def heard(self, utt: UttInfo, start: float, seconds: float) -> float:
        """A chunk of ``seconds`` starts playing at ``start`` (wall clock)."""
        with self._lock:
            utt.played.append((start, seconds))
            if utt.t_first_audio is None:
                utt.t_first_audio = start
            self._heard_until = max(self._heard_until, start + seconds)
        return start

    def ended(self, utt: UttInfo, now: bool = False) -> None:
        """The utterance's last chunk has been stamped: it is finished once that has been heard
        (``now``: it has been, a speaker's end marker was just reached)."""
        if utt.played:
            start, seconds = utt.played[-1]
            utt.t_play_end = start + seconds
        with self._lock:
            self._done.append((0.0 if now else utt.t_play_end or 0.0, utt))

    def finished(self, all: bool = False) -> list[UttInfo]:
        """The utterances heard whole since the last call, in spoken order (``all``: every ended one)."""
        now, done = time.monotonic(), []
        with self._lock:
            while self._done and (all or self._done[0][0] <= now):
                done.append(self._done.popleft()[1])
        return done

    def backlog_s(self) -> float:
        """Seconds stamped that the listener has not heard yet."""
        return max(0.0, self._heard_until - time.monotonic())


class Sink:
    """What a session writes translated speech to. ``check()`` before any model loads, ``open()``
    after; ``write(chunk)`` and ``end(utt)`` in spoken order, on the session's thread;
    ``drain()`` waits until everything written has been heard; ``close(abort)`` keeps what was
    written, ``discard()`` leaves nothing (the run spoke nothing).

    Subclasses play resampled samples (``_play``) and may stamp differently (the speaker); the
    resampling, the clock and the reporting of finished utterances are here, once."""

    def __init__(self, rate: int = 0):
        self.rate = rate
        self.clock = ListenerClock()
        self._resampler = Resampler(rate)

    def check(self) -> None:
        pass

    def open(self) -> None:
        pass

    def write(self, chunk: AudioChunk) -> None:
        self._play(chunk.utt, self._resampler.chunk(chunk.utt.utt_id, chunk.samples, chunk.sample_rate))

    def end(self, utt: UttInfo) -> None:
        self._play(utt, self._resampler.end(utt.utt_id))
        self.clock.ended(utt)

    def _play(self, utt: UttInfo, samples: np.ndarray) -> None:
        raise NotImplementedError

    def finished(self) -> list[UttInfo]:
        return self.clock.finished()

    def backlog_s(self) -> float:
        return self.clock.backlog_s()

    def drain(self, timeout: float = 30.0) -> None:
        pass

    def close(self, abort: bool = False) -> None:
        pass

    def discard(self) -> None:
        self.close(abort=True)


class PlaybackGate:
    """Half-duplex echo control: the microphone is closed while translated audio plays, plus a tail."""

    def __init__(self, tail_s: float = 0.3):
        self.tail_s = tail_s
        self._busy_until = 0.0

    def hold(self, now: Optional[float] = None) -> None:
        self._busy_until = (now if now is not None else time.monotonic()) + self.tail_s

    def is_open(self, now: Optional[float] = None) -> bool:
        return (now if now is not None else time.monotonic()) >= self._busy_until


class FileSink(Sink):
    """A sound file of the translation of ``source``. On a source with a timeline, each utterance
    is placed where it was spoken (never overlapping the one before), with silence between, and
    the file is at least as long as the source; a clause of simultaneous mode (an utterance with a
    ``source_id``) is placed where it would have played instead, as its source is still being
    spoken then.

    Its ``played`` stamps are what a listener of a file replayed at real-time pace would hear:
    each chunk starts once it is written and the chunk before it has finished. A clause lands in
    the file at that moment on the input's timeline: ``start - input_start``, where the input
    started playing at ``t_speech_end - seg_end_s`` (the least of it over the clauses so far: the
    clock only ever stamps speech late, when the feeder lags). ``stamps=False``: a speaker beside
    it stamps the times (:class:`TeeSink`).

    Written to a hidden ``.NAME.partial`` and renamed at the end, on drain and on a stop alike, so
    the path never holds a half-written file and nothing finished is lost.
    """

    def __init__(self, path: str | Path, sample_rate: int = 24000, source: Optional[Source] = None, stamps: bool = True):
        super().__init__(sample_rate)
        self.file = SoundFileWriter(path)
        self.path = self.file.path
        self.source = source
        self.timeline = source is not None and source.timeline
        self.stamps = stamps
        self._started: set[int] = set()
        self._input_start = float("inf")  # wall clock when the input's timeline began (clauses' estimate)

    def check(self) -> None:
        self.file.check()

    def open(self) -> None:
        self.file.expect_s = self.source.duration_s if self.timeline else 0.0  # for a full disk's message
        self.file.open(self.rate)

    def write(self, chunk: AudioChunk) -> None:
        utt = chunk.utt
        if utt.utt_id not in self._started:
            self._started.add(utt.utt_id)
            if self.timeline and utt.source_id is None:  # silence up to where the utterance was spoken
                self._silence_to(utt.seg_start_s)
        super().write(chunk)

    def end(self, utt: UttInfo) -> None:
        self._started.discard(utt.utt_id)
        if self.stamps:
            super().end(utt)
        else:
            self._play(utt, self._resampler.end(utt.utt_id))

    def _play(self, utt: UttInfo, samples: np.ndarray) -> None:
        """Write a chunk, stamped when a listener would hear it: once written, after the one before."""
        if not len(samples):
            return
        start = self.clock.play(utt, len(samples) / self.rate) if self.stamps else time.monotonic()
        if self.timeline and utt.source_id is not None:  # a clause: where it would have played
            self._input_start = min(self._input_start, utt.t_speech_end - utt.seg_end_s)
            self._silence_to(start - self._input_start)
        self.file.write(samples)

    def _silence_to(self, at_s: float) -> None:
        """Silence up to ``at_s`` on the input's timeline (nothing if the file is already past it, or
        one sample short of it: chunks played back to back are not split by a rounding)."""
        at = int(round(at_s * self.rate))
        if at > self.file.samples + 1:
            self.file.write(np.zeros(at - self.file.samples, dtype=np.float32))

    def finished(self) -> list[UttInfo]:
        return self.clock.finished(all=True)  # a file is written at once: nobody waits to hear it

    def close(self, abort: bool = False) -> None:
        if not self.file.is_open:
            return
        end = int(round(self.source.duration_s * self.rate)) if self.timeline else 0
        if not abort and end > self.file.samples:  # the translation of a file is as long as the file
            self.file.write(np.zeros(end - self.file.samples, dtype=np.float32))
        self.file.finish()

    def discard(self) -> None:
        self.file.discard()


class SpeakerSink(Sink):
    """Plays through a PortAudio output stream, gapless across chunks and utterances.

    An utterance starts to play once ``jitter_ms`` of it is buffered (or all of it is), so a
    TTS that streams slightly slower than real time does not stutter. Its clock is stamped when
    each chunk leaves the speaker (the audio callback's moment plus the device's latency); so is
    ``echo``'s reference (full duplex: the guard is told what was played, and when).
    """

    def __init__(self, device: Optional[str] = None, jitter_ms: int = 60, gate: Optional[PlaybackGate] = None,
                 echo: Optional[EchoGuard] = None):
        super().__init__()
        self.device_spec = device
        self.jitter_s = jitter_ms / 1000
        self.gate = gate
        self.echo = echo  # full duplex: told what left the speaker, and when (the echo guard's reference)
        self._lock = threading.Lock()
        self._pieces: collections.deque = collections.deque()  # [utt, samples or None (end), position]
        self._buffered: dict[int, int] = collections.defaultdict(int)
        self._ended: set[int] = set()
        self._stream = None
        self.latency = 0.0

    def check(self) -> None:
        devices.resolve(self.device_spec, "output")

    def open(self) -> None:
        sd = devices.sd()
        index = devices.resolve(self.device_spec, "output")
        self.rate = devices.default_rate(index)
        self._resampler = Resampler(self.rate)
        self._stream = devices.start_stream(  # latency "high" (~35 ms): no underruns while models load the CPU
            lambda channels: sd.OutputStream(device=index, samplerate=self.rate, channels=channels, dtype="float32",
                                             callback=self._callback, latency="high"),
            "output", self.device_spec or index)
        self.latency = float(self._stream.latency)

    def backlog_s(self) -> float:
        """Seconds written that have not been played yet."""
        with self._lock:
            queued = sum(len(samples) - pos for _, samples, pos in self._pieces if samples is not None)
        return queued / self.rate if self.rate else 0.0

    def end(self, utt: UttInfo) -> None:
        self._play(utt, self._resampler.end(utt.utt_id))
        with self._lock:  # the end marker: the callback reports the utterance when it reaches it
            self._pieces.append([utt, None, 0])
            self._ended.add(utt.utt_id)

    def _play(self, utt: UttInfo, samples: np.ndarray) -> None:
        if not len(samples):
            return
        with self._lock:
            self._pieces.append([utt, samples, 0])
            self._buffered[utt.utt_id] += len(samples)
        if self.gate is not None:
            self.gate.hold()

    def _callback(self, out: np.ndarray, frames: int, time_info: object, status: object) -> None:
        out.fill(0)
        now = time.monotonic()
        filled = 0
        with self._lock:
            while filled < frames and self._pieces:
                piece = self._pieces[0]
                utt, samples, pos = piece
                if samples is None:  # the utterance's end marker: it has been played
                    self._pieces.popleft()
                    self._ended.discard(utt.utt_id)
                    self._buffered.pop(utt.utt_id, None)
                    self.clock.ended(utt, now=True)
                    continue
                if utt.t_first_audio is None:
                    ready = self._buffered[utt.utt_id] >= self.jitter_s * self.rate or utt.utt_id in self._ended
                    if not ready:
                        break
                if pos == 0:  # the chunk starts to play: when it leaves the speaker
                    self.clock.heard(utt, now + filled / self.rate + self.latency, len(samples) / self.rate)
                n = min(frames - filled, len(samples) - pos)
                out[filled:filled + n] = samples[pos:pos + n, None]  # the same voice on every channel
                filled += n
                piece[2] = pos + n
                if piece[2] >= len(samples):
                    self._pieces.popleft()
            busy = bool(self._pieces) or filled > 0
        if filled and self.echo is not None:
            self.echo.played(out[:filled, 0].copy(), self.rate, now + self.latency)
        if busy and self.gate is not None:
            self.gate.hold(now + frames / self.rate + self.latency)

    def finished(self) -> list[UttInfo]:
        return self.clock.finished(all=True)  # reported by the callback as each is heard

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until everything written has been played."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pieces:
                    break
            time.sleep(0.02)
        time.sleep(self.latency)

    def close(self, abort: bool = False) -> None:
        if self._stream is None:
            return
        try:
            if abort:
                self._stream.abort()
            else:
                self._stream.stop()
            self._stream.close()
        except Exception:
            log.debug("closing the output stream failed", exc_info=True)
        self._stream = None


class TeeSink(Sink):
    """What a listener hears (the speaker, a virtual microphone) and a recording of it (back to
    back, no timeline: the input is live); the first stamps the times, ``played`` included."""

    def __init__(self, speaker: Sink, recording: FileSink):
        super().__init__()
        recording.stamps = False
        self.speaker, self.recording = speaker, recording
        self.sinks = (speaker, recording)

    def check(self) -> None:
        for sink in self.sinks:
            sink.check()

    def open(self) -> None:
        for sink in self.sinks:
            sink.open()

    def write(self, chunk: AudioChunk) -> None:
        for sink in self.sinks:
            sink.write(chunk)

    def end(self, utt: UttInfo) -> None:
        for sink in self.sinks:
            sink.end(utt)

    def finished(self) -> list[UttInfo]:
        return self.speaker.finished()

    def backlog_s(self) -> float:
        return self.speaker.backlog_s()

    def drain(self, timeout: float = 30.0) -> None:
        self.speaker.drain(timeout)

    def close(self, abort: bool = False) -> None:
        for sink in self.sinks:
            sink.close(abort)

    def discard(self) -> None:
        self.speaker.close(abort=True)
        self.recording.discard()
