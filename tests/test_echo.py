"""The echo guard (s3tvr/audio/echo.py): on real speech, what the speaker played coming back into
the microphone is echo, a person is not, over the echo too; and through a real PulseAudio server,
full duplex with the speaker looped back into the microphone translates none of its own output."""

import numpy as np
import pytest
from scipy.signal import fftconvolve, resample_poly

from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import load_audio
from s3tvr.audio.echo import EchoGuard

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
