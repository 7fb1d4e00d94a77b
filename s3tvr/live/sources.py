"""Where speech comes from: a file replayed at real-time pace, or a microphone (and, in
``s3tvr serve``, a WebSocket client: :class:`s3tvr.serve.transport.WebSocketSource`).

A source yields :class:`~s3tvr.live.messages.Block` objects of 16 kHz mono audio, each stamped with
the wall-clock time its last sample entered the program, which is what latency is measured from.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import soxr

from s3tvr.audio import SAMPLE_RATE, devices
from s3tvr.audio.decode import load_audio
from s3tvr.audio.streams import BLOCK, Reblocker
from s3tvr.live.messages import Block

log = logging.getLogger(__name__)


class Source:
    """What a session reads speech from. ``check()`` finds the input (before any model loads),
    ``open()`` starts it (after), ``blocks(stop)`` yields its audio until it ends or ``stop`` is
    set, ``close()`` frees it. The attributes say what the session may do with it."""

    name = "the input"  # for messages: a file's path, "the microphone"
    is_microphone = False  # the speaker may be heard by it: half-duplex unless audio.full_duplex
    timeline = False  # its audio has a timeline a file output can place the translation on
    realtime = True  # it comes at the pace it is spoken (False: a file read as fast as possible)
    duration_s = 0.0  # its length when known (a file's), else 0
    overflows = 0  # blocks lost because the program fell behind

    def check(self) -> None:
        pass

    def open(self) -> None:
        pass

    def blocks(self, stop: threading.Event) -> Iterator[Block]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FileSource(Source):
    """A file's audio track, replayed at real-time pace (or as fast as possible)."""

    timeline = True

    def __init__(self, path: str | Path, realtime: bool = True):
        self.path = Path(path)
        self.name = str(self.path)
        self.realtime = realtime
        self.audio: Optional[np.ndarray] = None

    def check(self) -> None:
        """Decode now, so a bad file is reported before any model loads."""
        if self.audio is None:
            self.audio = load_audio(self.path, SAMPLE_RATE)

    def open(self) -> None:
        self.check()

    @property
    def duration_s(self) -> float:
        return 0.0 if self.audio is None else len(self.audio) / SAMPLE_RATE

    def blocks(self, stop: threading.Event) -> Iterator[Block]:
        assert self.audio is not None, "open() first"
        start = time.monotonic()
        for i in range(0, len(self.audio), BLOCK):
            if stop.is_set():
                return
            if self.realtime:  # the block's last sample "arrives" when a microphone would have delivered it
                due = start + (i + BLOCK) / SAMPLE_RATE
                wait = due - time.monotonic()
                if wait > 0:
                    if stop.wait(wait):
                        return
            yield Block(self.audio[i:i + BLOCK], time.monotonic())


class MicSource(Source):
    """A microphone through PortAudio at its native rate, resampled to 16 kHz.

    The PortAudio callback only copies the block into a queue and never blocks; if the queue is
    full (the program fell behind) the block is dropped and counted as an overflow.
    """

    name = "the microphone"
    is_microphone = True

    def __init__(self, device: Optional[str] = None, max_backlog_s: float = 10.0):
        self.device_spec = device
        self.max_backlog_s = max_backlog_s
        self.overflows = 0
        self._stream = None
        self._raw: Optional[queue.Queue] = None
        self.rate = 0

    def check(self) -> None:
        """Find the device now, so a wrong name is reported before any model loads."""
        self._index = devices.resolve(self.device_spec, "input")
        self.rate = devices.default_rate(self._index)

    def open(self) -> None:
        sd = devices.sd()
        self.check()
        index = self._index
        blocksize = int(self.rate * BLOCK / SAMPLE_RATE)
        self._raw = queue.Queue(maxsize=max(8, int(self.max_backlog_s * self.rate / blocksize)))
        self._stream = devices.start_stream(  # stereo-only hardware is mixed down in the callback
            lambda channels: sd.InputStream(device=index, samplerate=self.rate, channels=channels, dtype="float32",
                                            blocksize=blocksize, callback=self._callback),
            "input", self.device_spec or index)

    def _callback(self, data: np.ndarray, frames: int, time_info: object, status: object) -> None:
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
        try:
            self._raw.put_nowait((data.mean(axis=1, dtype=np.float32), time.monotonic()))
        except queue.Full:
            self.overflows += 1

    def blocks(self, stop: threading.Event) -> Iterator[Block]:
        resampler = soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="float32") if self.rate != SAMPLE_RATE else None
        blocks = Reblocker()
        reported = 0
        while not stop.is_set():
            try:
                data, t = self._raw.get(timeout=0.05)
            except queue.Empty:
                continue
            if resampler is not None:
                data = resampler.resample_chunk(data)
            for block in blocks.push(data):
                yield Block(block, t)
            if self.overflows > reported:
                log.warning("microphone overflow: %d blocks lost so far (the machine is too busy)", self.overflows)
                reported = self.overflows

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.abort()
                self._stream.close()
            except Exception:
                log.debug("closing the input stream failed", exc_info=True)
            self._stream = None
        if self.overflows:
            log.warning("microphone overflows in this run: %d", self.overflows)

