"""A real PulseAudio server for the tests (tests/test_pulse.py, tests/test_echo.py): a virtual
microphone (a pipe source fed from a FIFO) and a virtual speaker (a pipe sink written to a FIFO),
reached by s3tvr through PortAudio; the threads that feed the one and record the other, and the
speaker looped back into the microphone (full duplex on a loudspeaker); how well a sound is found in
a recording."""

import contextlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import correlate

RATE = 16000


@contextlib.contextmanager
def pulse_server(tmp_path, *modules: str):
    """A private PulseAudio server with ``modules`` (default.pa lines) loaded: yields the environment
    that reaches it (PULSE_SERVER, HOME), and stops it after."""
    if shutil.which("pulseaudio") is None:
        pytest.skip("PulseAudio is not installed (Debian: apt-get install pulseaudio)")
    socket_path = tmp_path / "native"
    script = tmp_path / "default.pa"
    script.write_text("\n".join([f"load-module module-native-protocol-unix auth-anonymous=1 socket={socket_path}", *modules, ""]))
    env = dict(os.environ, HOME=str(tmp_path), PULSE_RUNTIME_PATH=str(tmp_path / "run"), PULSE_SERVER=f"unix:{socket_path}")
    server = subprocess.Popen(["pulseaudio", "-n", "-F", str(script), "--daemonize=no", "--exit-idle-time=-1",
                               "--disallow-exit", "--use-pid-file=no", "--log-target=stderr"],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "pulse.log", "w"))
    deadline = time.monotonic() + 15
    while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
        assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "pulse.log").read_text()
        time.sleep(0.1)
    try:
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def pulse(tmp_path):
    mic, speaker = tmp_path / "mic.fifo", tmp_path / "speaker.fifo"
    with pulse_server(
            tmp_path,
            f"load-module module-pipe-source source_name=virtual_mic file={mic} format=s16le rate={RATE} channels=1",
            # Timed by the system clock: without it the sink runs as fast as its reader drains it.
            f"load-module module-pipe-sink sink_name=virtual_speaker file={speaker} format=s16le rate={RATE} channels=1 "
            "use_system_clock_for_timing=yes",
            "set-default-source virtual_mic", "set-default-sink virtual_speaker") as env:
        yield env, mic, speaker


class Microphone(threading.Thread):
    """Feeds the virtual microphone in real time: silence, then ``speak()``'s audio. ``loop``: (a
    :class:`Speaker`, a gain): what that speaker plays is heard back, mixed in at that gain, as a
    loudspeaker's sound reaches a microphone in the room."""

    def __init__(self, fifo, loop=None):
        super().__init__(daemon=True)
        self.fifo, self.stop, self.queue, self.loop = fifo, threading.Event(), [], loop
        self.spoken_at = []  # when the last sample of each speak() went in

    def speak(self, audio):
        self.queue.append((np.clip(audio, -1, 1) * 32767).astype("<i2"))

    def run(self):
        block = RATE // 20
        with open(self.fifo, "wb", buffering=0) as f:
            start, sent = time.monotonic(), 0
            while not self.stop.is_set():
                speech = bool(self.queue)
                data = self.queue.pop(0) if speech else np.zeros(block, "<i2")
                for i in range(0, len(data), block):
                    piece = data[i:i + block]
                    if self.loop is not None:
                        speaker, gain = self.loop
                        heard = speaker.take(len(piece)) * gain
                        piece = np.clip(piece.astype(np.float32) + heard * 32767, -32768, 32767).astype("<i2")
                    f.write(piece.tobytes())
                    sent += len(piece)
                    time.sleep(max(0.0, start + sent / RATE - time.monotonic()))
                if speech:
                    self.spoken_at.append(time.monotonic())


class Speaker(threading.Thread):
    """Records everything played on the virtual speaker."""

    def __init__(self, fifo):
        super().__init__(daemon=True)
        self.fifo, self.chunks, self.times = fifo, [], []
        self._taken = (0, 0)  # take()'s place: (chunk, byte in it)

    def run(self):
        with open(self.fifo, "rb") as f:
            while chunk := f.read(3200):
                self.chunks.append(chunk)
                self.times.append(time.monotonic())  # the sink is paced by the clock: when it was played

    def take(self, n):
        """The next ``n`` samples played since the last take (silence for what has not been played
        yet); never more than 0.3 s behind what was played (a loop's delay stays a room's)."""
        chunk, at = self._taken
        if len(self.chunks) - chunk > 3:
            chunk, at = len(self.chunks) - 1, 0
        out = b""
        while len(out) < 2 * n and chunk < len(self.chunks):
            got = self.chunks[chunk][at:at + 2 * n - len(out)]
            out += got
            at += len(got)
            if at >= len(self.chunks[chunk]):
                chunk, at = chunk + 1, 0
        self._taken = (chunk, at)
        heard = np.frombuffer(out[: len(out) // 2 * 2], "<i2").astype(np.float32) / 32768
        return np.pad(heard, (0, n - len(heard)))

    def audio(self):
        return np.frombuffer(b"".join(self.chunks), "<i2").astype(np.float32) / 32768

    def quiet_for(self):
        """Seconds since the last chunk with sound in it was played (inf: none yet)."""
        for i in reversed(range(min(len(self.chunks), len(self.times)))):
            chunk, t = self.chunks[i], self.times[i]
            if np.abs(np.frombuffer(chunk[: len(chunk) // 2 * 2], "<i2")).max(initial=0) > 0.02 * 32768:
                return time.monotonic() - t
        return float("inf")

    def first_loud_at(self):
        """When the first chunk with sound in it was played (None: nothing yet)."""
        for chunk, t in zip(self.chunks, self.times):
            if np.abs(np.frombuffer(chunk[: len(chunk) // 2 * 2], "<i2")).max(initial=0) > 0.02 * 32768:
                return t
        return None


def best_match(recording: np.ndarray, part: np.ndarray) -> float:
    """How well ``part`` is found in ``recording``: normalised correlation at its best lag (1: as is)."""
    energy = np.concatenate([[0.0], np.cumsum(recording.astype(np.float64) ** 2)])
    norms = np.sqrt(energy[len(part):] - energy[:-len(part)]) * np.linalg.norm(part)
    # Windows of (near) digital silence would divide FFT rounding noise by nothing: floor the norm.
    floor = max(0.01 * norms.max(), 1e-9)
    return float((correlate(recording, part, mode="valid", method="fft") / np.maximum(norms, floor)).max())


def heard_whole(recording: np.ndarray, spoken: list, said_dir: Path) -> None:
    """The translations a run logged as spoken (``spoken``, their audio saved by --record-dir in
    ``said_dir``) reached ``recording`` whole: each found there as it was synthesised (a gap, a
    dropout or a wrong rate on the way would break the match), and Whisper tiny.en, listening to the
    recording, hears roughly the words logged. The ear is held loosely on purpose: tiny.en hears a
    Spanish name in English speech differently from one take to the next (CI heard the bare
    synthesis as "the pause of the sand pedral" and the recording as "the plaza de san pedro"), so
    only the correlation, not a transcript, stands for "nothing was lost on the way"."""
    import jiwer
    from faster_whisper import WhisperModel

    from s3tvr.audio.decode import load_audio
    from s3tvr.weights import bundled

    for r in spoken:
        assert best_match(recording, load_audio(said_dir / f"utt{r.utt_id:05d}_out.wav")) > 0.9, r.tgt_text
    loud = np.flatnonzero(np.abs(recording) > 0.02)
    assert len(loud), "the recording is silent"
    listener = WhisperModel(str(bundled.whisper_tiny_en()), device="cpu", compute_type="int8")
    segments, _ = listener.transcribe(recording[loud[0]:loud[-1] + RATE // 2], language="en", beam_size=1,
                                      condition_on_previous_text=False)
    normalise = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.Strip()])
    heard = normalise(" ".join(s.text for s in segments))
    said = normalise(" ".join(r.tgt_text for r in spoken))
    assert jiwer.wer(said, heard) <= 0.5, (said, heard)
