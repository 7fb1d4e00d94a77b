"""Where translated speech goes: the speaker, a file, or both.

A sink receives the chunks of each utterance in spoken order (the engine's reorderer sees to
that), then ``end(utt)``. It stamps ``played`` on the utterance (each chunk as a listener hears
it: when it starts playing, and its seconds), ``t_first_audio`` (the first chunk's start) and
``t_play_end`` (the last one's end), and reports it through ``finished()`` once it has been
played, so the collector can log it.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf
import soxr

from s3tvr import files
from s3tvr.audio import devices
from s3tvr.errors import InputError
from s3tvr.live.messages import AudioChunk, UttInfo

log = logging.getLogger(__name__)


class _Resampler:
    """Resamples each utterance's chunks to one rate without clicks at chunk joins, and clips to
    [-1, 1] (resampling overshoots a full-scale voice; 16-bit files would wrap around)."""

    def __init__(self, rate: int):
        self.rate = rate
        self._streams: dict[int, soxr.ResampleStream] = {}

    def chunk(self, chunk: AudioChunk) -> np.ndarray:
        samples = chunk.samples.astype(np.float32, copy=False)
        if chunk.sample_rate != self.rate:
            key = chunk.utt.utt_id
            if key not in self._streams:
                self._streams[key] = soxr.ResampleStream(chunk.sample_rate, self.rate, 1, dtype="float32")
            samples = self._streams[key].resample_chunk(samples)
        return np.clip(samples, -1.0, 1.0)

    def end(self, utt: UttInfo) -> np.ndarray:
        stream = self._streams.pop(utt.utt_id, None)
        if stream is None:
            return np.zeros(0, dtype=np.float32)
        return np.clip(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True), -1.0, 1.0)


class PlaybackGate:
    """Half-duplex echo control: the microphone is closed while translated audio plays, plus a tail."""

    def __init__(self, tail_s: float = 0.3):
        self.tail_s = tail_s
        self._busy_until = 0.0

    def hold(self, now: Optional[float] = None) -> None:
        self._busy_until = (now if now is not None else time.monotonic()) + self.tail_s

    def is_open(self, now: Optional[float] = None) -> bool:
        return (now if now is not None else time.monotonic()) >= self._busy_until


class FileSink:
    """A WAV file of the translation. For input with a timeline, each utterance is placed where it
    was spoken (never overlapping the one before), with silence between; a clause of simultaneous
    mode (an utterance with a ``source_id``) is placed where it would have played instead, as its
    source is still being spoken then.

    Its ``played`` stamps are what a listener of a file replayed at real-time pace would hear:
    each chunk starts once it is written and the chunk before it has finished. A clause lands in
    the file at that moment on the input's timeline: ``start - input_start``, where the input
    started playing at ``t_speech_end - seg_end_s`` (the least of it over the clauses so far: the
    clock only ever stamps speech late, when the feeder lags).

    Written to a hidden ``.NAME.partial`` and renamed at the end, on drain and on a stop alike, so
    the path never holds a half-written file and nothing finished is lost.
    """

    def __init__(self, path: str | Path, sample_rate: int = 24000, timeline: bool = True, stamps: bool = True):
        self.path = Path(path)
        self.stamps = stamps  # False when a speaker beside it stamps the times
        self.rate = sample_rate
        self.timeline = timeline
        self.tmp = files.partial_path(self.path)
        self._file: Optional[sf.SoundFile] = None
        self._resampler = _Resampler(sample_rate)
        self._cursor = 0  # samples written
        self._finished: list[UttInfo] = []
        self._started: set[int] = set()
        self._heard_until = 0.0  # wall clock when the last chunk written would have finished playing
        self._input_start = float("inf")  # wall clock when the input's timeline began (clauses' estimate)
        self.pad_to_s = 0.0  # a file input's length: a finished output is at least as long

    def check(self) -> None:
        if self.path.suffix.lower() not in (".wav", ".flac", ".ogg"):
            raise InputError(f"output {self.path}: write .wav, .flac or .ogg")
        files.check_output(self.path, "--output")

    def open(self) -> None:
        try:
            self._file = sf.SoundFile(self.tmp, "w", samplerate=self.rate, channels=1, format=self.path.suffix[1:].upper())
        except (OSError, sf.LibsndfileError, TypeError) as exc:
            raise InputError(f"cannot write {self.path}: {exc}") from None

    def write(self, chunk: AudioChunk) -> None:
        utt = chunk.utt
        if utt.utt_id not in self._started:
            self._started.add(utt.utt_id)
            if self.timeline and utt.source_id is None:  # silence up to where the utterance was spoken
                self._silence_to(utt.seg_start_s)
        self._play(utt, self._resampler.chunk(chunk))

    def _play(self, utt: UttInfo, samples: np.ndarray) -> None:
        """Write a chunk, stamped when a listener would hear it: once written, after the one before."""
        if not len(samples):
            return
        start, seconds = max(time.monotonic(), self._heard_until), len(samples) / self.rate
        self._heard_until = start + seconds
        if self.stamps:
            utt.played.append((start, seconds))
            if utt.t_first_audio is None:
                utt.t_first_audio = start
        if self.timeline and utt.source_id is not None:  # a clause: where it would have played
            self._input_start = min(self._input_start, utt.t_speech_end - utt.seg_end_s)
            self._silence_to(start - self._input_start)
        self._write(samples)

    def _silence_to(self, at_s: float) -> None:
        """Silence up to ``at_s`` on the input's timeline (nothing if the file is already past it, or
        one sample short of it: chunks played back to back are not split by a rounding)."""
        at = int(round(at_s * self.rate))
        if at > self._cursor + 1:
            self._write(np.zeros(at - self._cursor, dtype=np.float32))

    def _write(self, samples: np.ndarray) -> None:
        self._file.write(samples)
        self._cursor += len(samples)

    def backlog_s(self) -> float:
        """Seconds written that a listener has not heard yet."""
        return max(0.0, self._heard_until - time.monotonic())

    def end(self, utt: UttInfo) -> None:
        self._play(utt, self._resampler.end(utt))
        self._started.discard(utt.utt_id)
        if not self.stamps:
            return
        if utt.played:  # when its last sample would have finished playing
            start, seconds = utt.played[-1]
            utt.t_play_end = start + seconds
        self._finished.append(utt)

    def finished(self) -> list[UttInfo]:
        done, self._finished = self._finished, []
        return done

    def drain(self, timeout: float = 0.0) -> None:
        pass

    def close(self, abort: bool = False) -> None:
        if self._file is None:
            return
        end = int(round(self.pad_to_s * self.rate))
        if not abort and self.timeline and end > self._cursor:
            self._write(np.zeros(end - self._cursor, dtype=np.float32))
        self._file.close()
        self._file = None
        try:
            os.replace(self.tmp, self.path)
        except OSError as exc:  # never reported as written: say where the finished audio is
            raise InputError(f"cannot write {self.path}: {exc.strerror}; the translation is in {self.tmp}") from None

    def discard(self) -> None:
        """The run never started: leave no file behind."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp.unlink(missing_ok=True)


class SpeakerSink:
    """Plays through a PortAudio output stream, gapless across chunks and utterances.

    An utterance starts to play once ``jitter_ms`` of it is buffered (or all of it is), so a
    TTS that streams slightly slower than real time does not stutter.
    """

    def __init__(self, device: Optional[str] = None, jitter_ms: int = 60, gate: Optional[PlaybackGate] = None):
        self.device_spec = device
        self.jitter_s = jitter_ms / 1000
        self.gate = gate
        self._lock = threading.Lock()
        self._pieces: collections.deque = collections.deque()  # [utt, samples or None (end), position]
        self._buffered: dict[int, int] = collections.defaultdict(int)
        self._ended: set[int] = set()
        self._finished: list[UttInfo] = []
        self._stream = None
        self.rate = 0
        self.latency = 0.0

    def check(self) -> None:
        devices.resolve(self.device_spec, "output")

    def open(self) -> None:
        sd = devices.sd()
        index = devices.resolve(self.device_spec, "output")
        self.rate = devices.default_rate(index)
        self._resampler = _Resampler(self.rate)
        self._stream = devices.start_stream(  # latency "high" (~35 ms): no underruns while models load the CPU
            lambda channels: sd.OutputStream(device=index, samplerate=self.rate, channels=channels, dtype="float32",
                                             callback=self._callback, latency="high"),
            "output", self.device_spec or index)
        self.latency = float(self._stream.latency)

    def write(self, chunk: AudioChunk) -> None:
        samples = self._resampler.chunk(chunk)
        self._push(chunk.utt, samples)

    def backlog_s(self) -> float:
        """Seconds written that have not been played yet."""
        with self._lock:
            queued = sum(len(samples) - pos for _, samples, pos in self._pieces if samples is not None)
        return queued / self.rate if self.rate else 0.0

    def end(self, utt: UttInfo) -> None:
        tail = self._resampler.end(utt)
        with self._lock:
            if len(tail):
                self._pieces.append([utt, tail, 0])
                self._buffered[utt.utt_id] += len(tail)
            self._pieces.append([utt, None, 0])
            self._ended.add(utt.utt_id)

    def _push(self, utt: UttInfo, samples: np.ndarray) -> None:
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
                    if utt.played:  # the end of its last chunk, as heard
                        start, seconds = utt.played[-1]
                        utt.t_play_end = start + seconds
                    self._finished.append(utt)
                    continue
                if utt.t_first_audio is None:
                    ready = self._buffered[utt.utt_id] >= self.jitter_s * self.rate or utt.utt_id in self._ended
                    if not ready:
                        break
                if pos == 0:  # the chunk starts to play: when it leaves the speaker
                    start = now + filled / self.rate + self.latency
                    utt.played.append((start, len(samples) / self.rate))
                    if utt.t_first_audio is None:
                        utt.t_first_audio = start
                n = min(frames - filled, len(samples) - pos)
                out[filled:filled + n] = samples[pos:pos + n, None]  # the same voice on every channel
                filled += n
                piece[2] = pos + n
                if piece[2] >= len(samples):
                    self._pieces.popleft()
            busy = bool(self._pieces) or filled > 0
        if busy and self.gate is not None:
            self.gate.hold(now + frames / self.rate + self.latency)

    def finished(self) -> list[UttInfo]:
        with self._lock:
            done, self._finished = self._finished, []
        return done

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


class TeeSink:
    """The speaker and a recording of what it played (back to back, no timeline: the input is a
    microphone); the speaker stamps the times, ``played`` included."""

    def __init__(self, speaker: SpeakerSink, recording: FileSink):
        recording.stamps = False
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
        return self.sinks[0].finished()

    def backlog_s(self) -> float:
        return self.sinks[0].backlog_s()

    def drain(self, timeout: float = 30.0) -> None:
        self.sinks[0].drain(timeout)

    def close(self, abort: bool = False) -> None:
        for sink in self.sinks:
            sink.close(abort)

    def discard(self) -> None:
        self.sinks[0].close(abort=True)
        self.sinks[1].discard()
