"""The echo guard (s3tvr/audio/echo.py): on real speech, what the speaker played coming back into
the microphone is echo, a person is not, over the echo too; and through a real PulseAudio server,
full duplex with the speaker looped back into the microphone translates none of its own output."""

import signal
import subprocess
import threading
import time

import numpy as np
import pytest
from pulse_devices import Microphone, Speaker
from scipy.signal import fftconvolve, resample_poly

from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import load_audio
from s3tvr.audio.echo import ECHO_HEARD, EchoGuard
from s3tvr.latency.record import read_log

from conftest import HANG_S, s3tvr_cmd

T0 = 1000.0  # the wall clock when the speaker starts playing
DELAY_S = 0.15  # speaker to the segment's stamps: the room and the input's buffers


def room(seed: int = 0) -> np.ndarray:
    """The direct path and 0.2 s of decaying reverberation, as loud as the direct sound."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, int(0.2 * SAMPLE_RATE)) / SAMPLE_RATE
    tail = rng.standard_normal(len(t)) * np.exp(-6.9 * t / 0.2)
    return np.concatenate([[1.0], tail / np.sqrt(np.sum(tail ** 2))]).astype(np.float32)


def db(x: np.ndarray, level: float) -> np.ndarray:
    return (x * 10 ** (level / 20) / np.sqrt(np.mean(x ** 2))).astype(np.float32)


@pytest.fixture(scope="module")
def clips(data):
    played = db(load_audio(data / "lj001-0001.ogg"), -20)
    person = db(load_audio(data / "fleurs-es-002.ogg"), -20)
    return played, person


def guard_that_played(played: np.ndarray) -> EchoGuard:
    """A guard whose speaker played ``played`` from T0, at 48 kHz in 1024-frame callbacks."""
    guard = EchoGuard(threshold=0.5, max_delay_s=0.5)
    device = resample_poly(played, 3, 1).astype(np.float32)
    for k in range(0, len(device), 1024):
        guard.played(device[k:k + 1024], 48000, T0 + k / 48000)
    return guard


def microphone(*parts: tuple[np.ndarray, float], seconds: float) -> np.ndarray:
    """What the microphone took in from T0 (its stamps DELAY_S late): each (audio, at s) added, over
    a noise floor at -60 dBFS."""
    mic = np.random.default_rng(1).standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32) * 1e-3
    for audio, at in parts:
        i = int(at * SAMPLE_RATE)
        mic[i:i + len(audio)] += audio[: len(mic) - i]
    return mic


def score(guard: EchoGuard, mic: np.ndarray) -> float:
    """The guard's score of the whole microphone as one segment, stamped as a microphone's are."""
    return guard.score(mic, T0 + DELAY_S + len(mic) / SAMPLE_RATE)


@pytest.mark.parametrize("level", [-6, -20])
def test_what_was_played_heard_back_through_a_room_is_echo(clips, level):
    played, _ = clips
    guard = guard_that_played(played)
    echo = fftconvolve(played, room())[: len(played)] * 10 ** (level / 20)
    mic = microphone((echo, 0.05), seconds=len(played) / SAMPLE_RATE + 0.3)
    assert guard.is_echo(mic, T0 + DELAY_S + len(mic) / SAMPLE_RATE)[0], score(guard, mic)


def test_a_person_speaking_while_the_translation_plays_unheard_is_not_echo(clips):
    played, person = clips
    guard = guard_that_played(played)
    mic = microphone((person, 0.2), seconds=len(person) / SAMPLE_RATE + 0.4)
    assert score(guard, mic) < 0.2


def test_a_person_dominating_the_echo_is_not_echo(clips):
    """Double talk: the person at -20 dBFS, the echo 6 dB below them, from before they started."""
    played, person = clips
    guard = guard_that_played(played)
    echo = fftconvolve(played, room())[: len(played)] * 10 ** (-6 / 20)
    mic = microphone((echo, 0.05), (person, 0.8), seconds=len(person) / SAMPLE_RATE + 1.0)
    assert not guard.is_echo(mic, T0 + DELAY_S + len(mic) / SAMPLE_RATE)[0], score(guard, mic)


def test_nothing_played_near_the_segment_is_not_echo_at_once(clips):
    played, person = clips
    guard = guard_that_played(played)
    after = T0 + len(played) / SAMPLE_RATE + 2.0  # the segment starts 2 s after the playback ended
    assert guard.reference(after - 0.5, after + 3.0) is None
    assert guard.score(person[: 3 * SAMPLE_RATE], after + 3.0) == 0.0


def test_the_speaker_tells_the_guard_what_left_it_and_when(clips, monkeypatch):
    """The audio callback is the one place that knows: its samples, at the moment they are heard."""
    import types

    from s3tvr.audio.streams import Resampler
    from s3tvr.live import sinks
    from s3tvr.live.messages import AudioChunk, UttInfo
    from s3tvr.live.sinks import SpeakerSink

    calls = iter(range(100))  # the device asks every 0.1 s: the callback's clock, without waiting for it
    monkeypatch.setattr(sinks, "time", types.SimpleNamespace(monotonic=lambda: T0 + 0.1 * next(calls)))

    played, _ = clips
    guard = EchoGuard()
    sink = SpeakerSink(jitter_ms=0, echo=guard)
    sink.rate, sink._resampler = 16000, Resampler(16000)
    utt = UttInfo(0, "en", "es", 0, 1, 0, 0)
    sink.write(AudioChunk(utt, played[:SAMPLE_RATE], SAMPLE_RATE))
    out = np.zeros((1600, 1), np.float32)
    for _ in range(10):
        sink._callback(out, 1600, None, None)
    start = utt.played[0][0]
    heard = guard.reference(start, start + 1.0)
    assert heard is not None and np.corrcoef(heard, played[:SAMPLE_RATE])[0, 1] > 0.99


# -- through a real PulseAudio server, the speaker looped back into the microphone -------------------

LOOP_GAIN = 0.5  # -6 dB: a loudspeaker near the microphone


def loop_back(pulse, data, tmp_path, *flags, guard=True):
    """Full duplex, fake recognition and translation, Piper's voice: a real Spanish clip spoken
    into the microphone, which also hears the speaker. Returns (the log's records, when the clip
    had been spoken, s3tvr's status lines) once the run has heard its own voice back: with the
    ``guard``, an echo skipped and then 2 s of quiet (nothing more played); without, an utterance
    begun after the clip translated (it would go on translating itself for ever)."""
    env, mic_fifo, speaker_fifo = pulse
    speaker = Speaker(speaker_fifo)
    speaker.start()
    mic = Microphone(mic_fifo, loop=(speaker, LOOP_GAIN))
    mic.start()
    log = tmp_path / "latency.jsonl"
    config = tmp_path / "loop.yaml"  # the fake preset's recognition and translation, a real voice
    config.write_text("asr: {backend: fake, delays: [0.3]}\nmt: {backend: fake, delays: [0.05]}\n"
                      "tts: {backend: piper, voice: 'bundled:joe'}\n")
    proc = subprocess.Popen([*s3tvr_cmd(), "-vv", "run", "es", "--config", config, "--input-device", "pulse", "--output-device", "pulse",
                             "--full-duplex", "--log", log, *flags],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status: list[str] = []
    threading.Thread(target=lambda: status.extend(proc.stderr), daemon=True).start()
    records = []
    try:
        deadline = time.monotonic() + HANG_S
        while not any("listening" in line for line in status):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(status)
            time.sleep(0.1)
        mic.speak(load_audio(data / "fleurs-es-002.ogg"))
        deadline = time.monotonic() + HANG_S

        def heard_back() -> bool:
            if not mic.spoken_at:
                return False
            return any(r.skipped == ECHO_HEARD or (r.t_speech_start > mic.spoken_at[0] and r.latency_s) for r in records)

        while not heard_back() or (guard and speaker.quiet_for() < 2.0):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(status)
            time.sleep(0.2)
            records = read_log(log) if log.exists() else []
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        mic.stop.set()
    assert proc.returncode == 130, "".join(status)
    return read_log(log), mic.spoken_at[0], "".join(status)


@pytest.mark.pulse
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sentence", "simultaneous"])
def test_full_duplex_with_the_speaker_looped_back_translates_none_of_its_own_output(pulse, data, tmp_path, mode):
    """In simultaneous mode the guard also judges the speech heard so far before each pass."""
    records, clip_spoken, status = loop_back(pulse, data, tmp_path, "--mode", mode)
    spoken = [r for r in records if r.latency_s is not None]
    echoes = [r for r in records if r.skipped == ECHO_HEARD]
    assert spoken and echoes, status  # the clip was translated, and its translation was heard back
    assert all(r.t_speech_start < clip_spoken for r in spoken), (records, status)  # only the clip: none of the echo
    assert all(r.t_speech_start > min(r.t_first_audio for r in spoken) for r in echoes), records


@pytest.mark.pulse
@pytest.mark.slow
def test_the_control_without_the_guard_translates_its_own_output(pulse, data, tmp_path):
    """The loop is real: with the guard off, what s3tvr played comes back and is translated again."""
    records, clip_spoken, status = loop_back(pulse, data, tmp_path, "--mode", "sentence", "--set", "audio.echo_guard=false",
                                             guard=False)
    assert any(r.t_speech_start > clip_spoken and r.latency_s is not None for r in records), (records, status)
    assert not any(r.skipped == ECHO_HEARD for r in records)
