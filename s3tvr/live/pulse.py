"""s3tvr in a call, through a PulseAudio server (PipeWire's pulse server included): a virtual
microphone other programs record the translation from, and one application's audio captured
instead of a microphone.

Everything goes through the server's own command-line clients (``pactl``, ``pacat``, ``parec``,
Debian's pulseaudio-utils), which speak to PulseAudio and to pipewire-pulse alike; PortAudio's
ALSA "pulse" device reaches only the default sink and source.

    --virtual-mic NAME   null sink NAME_out ──monitor──> remap source NAME (listed as a microphone)
                         s3tvr writes the translation into NAME_out (pacat); calls record NAME
    --listen-to APP      APP's streams moved to the null sink s3tvr_listen; s3tvr reads its monitor
                         (parec); a loopback plays it on to the user's sink, ducked

What s3tvr loads it unloads when the run ends, on a stop signal too; a run killed outright leaves
its modules behind, so each run first unloads those of s3tvr processes that are gone (every
module it loads is tagged with its pid).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.streams import BLOCK, Reblocker
from s3tvr.errors import InputError, SetupError
from s3tvr.live.messages import Block, UttInfo
from s3tvr.live.sinks import Sink
from s3tvr.live.sources import Source

log = logging.getLogger(__name__)

OWNER = "s3tvr.pid"  # the property every module s3tvr loads carries: which process loaded it
LATENCY_MS = 30  # pacat's and parec's buffer: what the virtual microphone adds, beside the server's own
WHAT = "s3tvr in a call (--virtual-mic, --listen-to, --input-device pulse:NAME)"
NO_SERVER = ("needs a PulseAudio or PipeWire sound server (Linux): start one (pipewire-pulse, or pulseaudio "
             "--start). On macOS install BlackHole, on Windows VB-CABLE, and give its name to --output-device "
             "(the translation) or --input-device (what to translate)")


def pactl(*args: str) -> str:
    """``pactl ARGS``'s output; a missing client or server is a one-line SetupError."""
    if shutil.which("pactl") is None:
        raise SetupError(f"{WHAT} needs pactl, pacat and parec (Debian: apt-get install pulseaudio-utils) and "
                         f"{NO_SERVER.split(' ', 1)[1]}")
    done = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        if any("Connection" in line or "connect" in line for line in message):
            raise SetupError(f"{WHAT} {NO_SERVER}")
        raise SetupError(f"pactl {' '.join(args)} failed: {message[-1] if message else done.returncode}")
    return done.stdout


def _listed(kind: str) -> list[dict]:
    """``pactl list KIND`` as dicts (index, name, properties, ...)."""
    return json.loads(pactl("-f", "json", "list", kind) or "[]")


def _owned_modules(pid: Optional[int] = None) -> list[tuple[int, str, int]]:
    """(index, name, owner pid) of the modules s3tvr loaded (``pid``: that process's; None: any s3tvr
    process's). pactl's JSON lists no module index: its short listing does (index, name, arguments)."""
    mine = []
    for line in pactl("list", "modules", "short").splitlines():
        index, name, argument = (line.split("\t") + ["", ""])[:3]
        if f"{OWNER}=" in argument:
            owner = int(argument.split(f"{OWNER}=")[1].split()[0].strip("\"'"))
            if pid is None or owner == pid:
                mine.append((int(index), name, owner))
    return mine


def remove_stale() -> None:
    """Unload what s3tvr processes that no longer run left loaded (killed outright: no cleanup ran)."""
    for index, name, owner in _owned_modules():
        if not _alive(owner):
            log.info("unloading %s left by s3tvr process %d", name, owner)
            subprocess.run(["pactl", "unload-module", str(index)], capture_output=True, timeout=20)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Modules:
    """Modules loaded for one run, unloaded in reverse order by :meth:`unload` (idempotent)."""

    def __init__(self) -> None:
        self.loaded: list[int] = []

    def load(self, module: str, *args: str, properties: str = "") -> int:
        tag = f"{OWNER}={os.getpid()}"
        props = f"{properties} {tag}".strip()
        # The pid goes in the module's description property, where pactl lists it with the arguments.
        key = "sink_properties" if module == "module-null-sink" else (
            "source_properties" if module == "module-remap-source" else "sink_input_properties")
        index = int(pactl("load-module", module, *args, f"{key}='{props}'").strip())
        self.loaded.append(index)
        return index

    def unload(self) -> None:
        while self.loaded:
            index = self.loaded.pop()
            subprocess.run(["pactl", "unload-module", str(index)], capture_output=True, timeout=20)


# -- the virtual microphone ---------------------------------------------------------------------


class VirtualMicSink(Sink):
    """The translation written into a virtual microphone named ``name`` that calls (Zoom, Meet,
    Teams, Discord, OBS) can pick: a null sink ``NAME_out`` whose monitor is remapped into a source
    ``NAME``. Between utterances the null sink plays silence at its own clock, so a call never hears
    a dropout. Chunks play back to back as they are written (the ListenerClock's ``play``), heard by
    a reader of the source ``LATENCY_MS`` later plus the server's own latency."""

    def __init__(self, name: str = "s3tvr", rate: int = 48000):
        super().__init__(rate)
        self.name, self.sink_name = name, f"{name}_out"
        self.modules = Modules()
        self._writer: Optional[_PacatWriter] = None

    def check(self) -> None:
        remove_stale()
        taken = [s["name"] for s in _listed("sources")] + [s["name"] for s in _listed("sinks")]
        if self.name in taken or self.sink_name in taken:
            raise InputError(f"a sound device named {self.name!r} exists already (another s3tvr running?): "
                             f"give another name, --virtual-mic NAME")

    def open(self) -> None:
        description = f"device.description={self.name}"
        self.modules.load("module-null-sink", f"sink_name={self.sink_name}", f"rate={self.rate}", "channels=1",
                          properties=f"device.description={self.name}-output")
        self.modules.load("module-remap-source", f"master={self.sink_name}.monitor", f"source_name={self.name}",
                          properties=f"{description} device.icon_name=audio-input-microphone")
        self._writer = _PacatWriter(self.sink_name, self.rate)
        # A new stream takes ~0.4 s to start playing (benchmarks/bench_call.py): started now, on silence,
        # so the first utterance does not pay it.
        self._writer.write(np.zeros(self.rate // 20, np.float32))
        log.info("virtual microphone %r ready: choose it as the microphone in the call", self.name)

    def _play(self, utt: UttInfo, samples: np.ndarray) -> None:
        if len(samples) and self._writer is not None:
            self.clock.play(utt, len(samples) / self.rate)
            self._writer.write(samples)

    def drain(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.clock.backlog_s() > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(LATENCY_MS / 1000)

    def close(self, abort: bool = False) -> None:
        try:
            if self._writer is not None:
                self._writer.close(abort)
        finally:
            self._writer = None
            self.modules.unload()


class _PacatWriter:
    """Samples to a pulse sink through ``pacat``, on a thread of its own: the pipe blocks once the
    server's buffer is full, which must not hold up the session's thread."""

    def __init__(self, sink: str, rate: int):
        self._proc = subprocess.Popen(
            ["pacat", "--playback", f"--device={sink}", "--format=float32le", f"--rate={rate}", "--channels=1",
             f"--latency-msec={LATENCY_MS}", "--client-name=s3tvr", "--stream-name=translation", "--raw"],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._pump, name="s3tvr-pacat", daemon=True)
        self._thread.start()

    def write(self, samples: np.ndarray) -> None:
        self._queue.put(samples.astype("<f4").tobytes())

    def _pump(self) -> None:
        while (data := self._queue.get()) is not None:
            try:
                self._proc.stdin.write(data)
                self._proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                log.warning("the virtual microphone's writer stopped: %s", self._proc.stderr.read().decode().strip())
                return

    def close(self, abort: bool) -> None:
        self._queue.put(None)
        if not abort:
            self._thread.join(timeout=30)
        try:
            self._proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        if abort:
            self._proc.kill()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()


# -- listening to a program -----------------------------------------------------------------------


class PulseSource(Source):
    """A pulse source by name (a microphone, or the monitor of an output: ``NAME.monitor``) read
    through ``parec`` at 16 kHz mono; each block stamped when it arrived."""

    def __init__(self, device: str, is_microphone: bool = True):
        self.device = device
        self.name = f"pulse source {device}"
        self.is_microphone = is_microphone and not device.endswith(".monitor")
        self._proc: Optional[subprocess.Popen] = None

    def check(self) -> None:
        names = [s["name"] for s in _listed("sources")]
        if self.device not in names:
            raise InputError(f"no pulse source named {self.device!r}: choose one of {', '.join(names) or 'none'} "
                             f"(pactl list sources short)")

    def open(self) -> None:
        self._proc = subprocess.Popen(
            ["parec", f"--device={self.device}", "--format=float32le", f"--rate={SAMPLE_RATE}", "--channels=1",
             f"--latency-msec={LATENCY_MS}", "--client-name=s3tvr", "--stream-name=capture", "--raw"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def blocks(self, stop: threading.Event) -> Iterator[Block]:
        assert self._proc is not None, "open() first"
        blocks = Reblocker()
        while not stop.is_set():
            data = self._proc.stdout.read1(BLOCK * 4)
            if not data:
                if stop.is_set():
                    return
                raise SetupError(f"capture from {self.device} stopped: {self._proc.stderr.read().decode().strip()}")
            now = time.monotonic()
            for block in blocks.push(np.frombuffer(data[: len(data) // 4 * 4], "<f4")):
                yield Block(block, now)

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=5)
            self._proc = None


@dataclass
class _Moved:
    index: int  # the sink input (an application's stream)
    sink: str  # the sink it played to, where it goes back


class AppSource(PulseSource):
    """One application's audio instead of a microphone (``--listen-to APP``): its streams move to
    a private null sink whose monitor s3tvr reads, and a loopback plays that on to the sink they
    played to, at ``duck_db`` (a level: -15 dB by default), so the user hears the original under the translation and the
    capture never hears the translation (it plays to the user's sink, not the private one)."""

    SINK = "s3tvr_listen"

    def __init__(self, app: str, duck_db: float = -15.0):
        super().__init__(f"{self.SINK}.monitor", is_microphone=False)
        self.app, self.duck_db = app, duck_db
        self.name = f"the audio of {app}"
        self.modules = Modules()
        self._moved: list[_Moved] = []

    def check(self) -> None:
        remove_stale()
        self._streams()

    def _streams(self) -> list[dict]:
        """The app's streams playing now, matched on its name or its program's (any case)."""
        streams = _listed("sink-inputs")
        want = self.app.lower()
        found = [s for s in streams if any(want in str(s.get("properties", {}).get(key, "")).lower()
                                           for key in ("application.name", "application.process.binary"))]
        if not found:
            playing = sorted({str(s.get("properties", {}).get("application.name", "?")) for s in streams})
            raise InputError(f"no program named like {self.app!r} is playing sound now: start its audio first, or "
                             f"choose one of: {', '.join(playing) or 'none playing'}")
        return found

    def open(self) -> None:
        streams = self._streams()
        sinks = {s["index"]: s["name"] for s in _listed("sinks")}
        self.modules.load("module-null-sink", f"sink_name={self.SINK}", f"rate={SAMPLE_RATE}", "channels=1",
                          properties=f"device.description=s3tvr-listening-to-{self.app}")
        try:
            user_sink = sinks.get(streams[0]["sink"]) or pactl("get-default-sink").strip()
            loop = self.modules.load("module-loopback", f"source={self.SINK}.monitor", f"sink={user_sink}",
                                     "latency_msec=60", "source_dont_move=true")
            self._duck(loop)
            for stream in streams:
                pactl("move-sink-input", str(stream["index"]), self.SINK)
                self._moved.append(_Moved(stream["index"], sinks.get(stream["sink"], user_sink)))
            super().open()
        except BaseException:
            self.close()
            raise
        log.info("listening to %s (%d stream(s)); the original plays on %s at %.0f dB",
                 self.app, len(streams), user_sink, self.duck_db)

    def _duck(self, module: int) -> None:
        """Set the loopback's stream (the one the module owns) to ``duck_db`` (-90: silent). The
        module makes its stream after load-module returns: wait for it, a second at most."""
        volume = "0" if self.duck_db <= -90 else f"{self.duck_db:g}dB"
        deadline = time.monotonic() + 1.0
        while True:
            owned = [s for s in _listed("sink-inputs") if str(s.get("owner_module")) == str(module)]
            if owned or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if not owned:
            raise SetupError(f"the loopback that plays {self.app} on to you did not start: try again, or see pactl list modules")
        for stream in owned:
            pactl("set-sink-input-volume", str(stream["index"]), volume)

    def close(self) -> None:
        super().close()
        for moved in self._moved:  # back where they played (a stream that ended meanwhile is gone: fine)
            subprocess.run(["pactl", "move-sink-input", str(moved.index), moved.sink], capture_output=True, timeout=20)
        self._moved.clear()
        self.modules.unload()
