"""What the virtual microphone adds: from the moment s3tvr hands a chunk of translated speech to
its sink (VirtualMicSink.write) to the moment a program recording the microphone (parec, as a call
app records) reads its first sample. A private PulseAudio server is started for the run.

Two cases: the first chunk of an utterance after silence (the stream has run dry: the server
waits to refill its buffer before playing on; the click leads 100 ms of audio, a short word) and a
chunk in the middle of continuous speech (written in real time, 20 ms at a time). Each click is
10 ms of full scale; its arrival is when the reader got the block it sits in (about 10 ms each).

    .venv/bin/python benchmarks/bench_call.py [--clicks 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s3tvr.live.messages import AudioChunk, UttInfo  # noqa: E402
from s3tvr.live.pulse import LATENCY_MS, VirtualMicSink  # noqa: E402

RATE = 48000  # the virtual microphone's, as a call app opens it


def start_server(folder: Path) -> subprocess.Popen:
    """A private PulseAudio server, reached through the environment of this process."""
    socket_path = folder / "native"
    (folder / "default.pa").write_text(f"load-module module-native-protocol-unix auth-anonymous=1 socket={socket_path}\n"
                                       "load-module module-null-sink sink_name=speaker\n")
    os.environ.update(HOME=str(folder), PULSE_RUNTIME_PATH=str(folder / "run"), PULSE_SERVER=f"unix:{socket_path}")
    server = subprocess.Popen(["pulseaudio", "-n", "-F", str(folder / "default.pa"), "--daemonize=no", "--exit-idle-time=-1",
                               "--disallow-exit", "--use-pid-file=no"], stderr=subprocess.DEVNULL)
    for _ in range(150):
        if subprocess.run(["pactl", "info"], capture_output=True).returncode == 0:
            return server
        time.sleep(0.1)
    raise SystemExit("the PulseAudio server did not start")


class Reader(threading.Thread):
    """parec on the virtual microphone: the time each click's block was read."""

    def __init__(self, device: str):
        super().__init__(daemon=True)
        self.proc = subprocess.Popen(["parec", f"--device={device}", "--format=float32le", f"--rate={RATE}", "--channels=1",
                                      "--latency-msec=10", "--raw"], stdout=subprocess.PIPE)
        self.arrivals: list[float] = []
        self._loud = False

    def run(self) -> None:
        while data := self.proc.stdout.read1(RATE // 100 * 4):
            now = time.monotonic()
            loud = bool(np.abs(np.frombuffer(data[: len(data) // 4 * 4], "<f4")).max(initial=0) > 0.5)
            if loud and not self._loud:
                self.arrivals.append(now)
            self._loud = loud


def click(ms: float = 10) -> np.ndarray:
    out = np.zeros(int(RATE * ms / 1000), np.float32)
    out[:] = 0.9
    return out


def after_silence(sink: VirtualMicSink, reader: Reader, clicks: int) -> list[float]:
    """An utterance's first chunk, the stream dry before it: write to first sample read, seconds."""
    delays = []
    for k in range(clicks):
        utt = UttInfo(k, "es", "en", 0.0, 1.0, time.monotonic(), time.monotonic())
        before = len(reader.arrivals)
        t0 = time.monotonic()
        sink.write(AudioChunk(utt, np.concatenate([click(), np.zeros(RATE // 10, np.float32)]), RATE))  # a short word
        sink.end(utt)
        time.sleep(0.6)
        if len(reader.arrivals) > before:
            delays.append(reader.arrivals[before] - t0)
    return delays


def continuous(sink: VirtualMicSink, reader: Reader, clicks: int) -> list[float]:
    """Clicks inside speech written in real time, 20 ms at a time (quiet noise around them)."""
    utt = UttInfo(10_000, "es", "en", 0.0, 1.0, time.monotonic(), time.monotonic())
    piece, delays, start = RATE // 50, [], time.monotonic()
    rng = np.random.default_rng(0)
    for i in range(clicks * 25):  # a click every 0.5 s
        chunk = (rng.standard_normal(piece) * 0.01).astype(np.float32)
        marked = i % 25 == 12
        if marked:
            chunk[: len(click())] = click()
            before, t0 = len(reader.arrivals), time.monotonic()
        sink.write(AudioChunk(utt, chunk, RATE))
        time.sleep(max(0.0, start + (i + 1) / 50 - time.monotonic()))
        if marked:
            pending = (before, t0)
        if i % 25 == 24:
            before, t0 = pending
            if len(reader.arrivals) > before:
                delays.append(reader.arrivals[before] - t0)
    sink.end(utt)
    return delays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clicks", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = start_server(Path(folder))
        sink = VirtualMicSink("s3tvr", RATE)
        sink.check()
        sink.open()
        reader = Reader("s3tvr")
        try:
            reader.start()
            time.sleep(1.0)
            rows = {"after silence (an utterance starts)": after_silence(sink, reader, args.clicks),
                    "inside continuous speech": continuous(sink, reader, args.clicks)}
        finally:
            sink.close()
            reader.proc.kill()
            server.terminate()
    print(f"virtual microphone: write -> a reader of the source (ms; pacat/parec buffers {LATENCY_MS}/10 ms)")
    print(f"{'case':<38}{'n':>4}{'p50':>8}{'p90':>8}{'max':>8}")
    for name, delays in rows.items():
        ms = sorted(d * 1000 for d in delays)
        if not ms:
            print(f"{name:<38}{0:>4}  (no click arrived)")
            continue
        p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
        print(f"{name:<38}{len(ms):>4}{statistics.median(ms):>8.0f}{p90:>8.0f}{ms[-1]:>8.0f}")


if __name__ == "__main__":
    main()
