"""Lag control: when the translation is longer than its source, the listener's lag stays bounded
over a long talk (the TTS speaks faster, up to 1.25x, and shortens its pauses) instead of growing
with every sentence; the rate used is logged per utterance and shown by the report."""

import numpy as np
import pytest

from s3tvr import Engine, load_config
from s3tvr.backends.fake import FakeTts, FakeTtsConfig
from s3tvr.latency.report import format_table, summarize
from s3tvr.live.messages import AudioChunk, Translation, UttInfo
from s3tvr.live.pacing import PacedTts, pace, trim_silence
from s3tvr.live.stages import TtsStage

RATE = 16000


def test_the_rate_rises_from_natural_at_the_lag_to_the_cap_at_twice_it():
    assert pace(0.0, 2.0, 1.25) == pace(2.0, 2.0, 1.25) == 1.0
    assert pace(3.0, 2.0, 1.25) == pytest.approx(1.125)
    assert pace(4.0, 2.0, 1.25) == pace(60.0, 2.0, 1.25) == 1.25


def test_silence_is_cut_at_the_ends_only():
    speech = np.concatenate([np.zeros(RATE), np.full(RATE, 0.5), np.zeros(RATE // 2), np.full(RATE, 0.5), np.zeros(RATE)])
    cut = trim_silence(speech.astype(np.float32), RATE, keep_s=0.1)
    assert len(cut) == int(2.5 * RATE) + 2 * RATE // 10  # the pause inside the speech is kept whole
    assert len(trim_silence(speech, RATE, 0.1, lead=False)) == int(3.5 * RATE) + RATE // 10


def simulate(minutes: float, paced: bool) -> list[tuple[float, float]]:
    """A talk on a simulated clock: 8 s sentences with 2 s pauses; each translation is spoken 1.5x
    as long as its source (12 s) with a 0.4 s pause after it, and is ready 1 s after its sentence
    ends; the listener hears them back to back. (end of speech, lag: end of speech -> end heard)."""
    now, heard_until = [0.0], [0.0]
    tts = FakeTts(FakeTtsConfig(delays=[0], seconds_per_word=0.6, pause_s=0.4, sample_rate=RATE), "es", "en")
    stage = PacedTts(tts, lambda: max(0.0, heard_until[0] - now[0]), lag_s=2.0, max_rate=1.25, max_gap_s=0.1) if paced else TtsStage(tts)
    lags, t, utt_id = [], 0.0, 0
    while t < minutes * 60:
        end = t + 8.0
        now[0] = end + 1.0
        utt = UttInfo(utt_id, "es", "en", t, end, end, end)
        spoken = sum(len(c.samples) for c in stage.process(Translation(utt, "palabra " * 20)) if isinstance(c, AudioChunk))
        heard_until[0] = max(now[0], heard_until[0]) + spoken / RATE
        lags.append((end, heard_until[0] - end))
        t, utt_id = end + 2.0, utt_id + 1
    return lags


def minute(lags, first: bool) -> float:
    ends = [e for e, _ in lags]
    lo, hi = (0, 60) if first else (ends[-1] - 60, ends[-1] + 1)
    return float(np.mean([lag for e, lag in lags if lo <= e < hi]))


def test_lag_stays_bounded_over_ten_minutes_of_a_translation_half_as_long_again():
    unpaced = simulate(10, paced=False)
    # Without lag control each sentence adds 2.4 s: ten minutes in, the listener is minutes behind.
    assert minute(unpaced, first=False) > minute(unpaced, first=True) + 100
    paced = simulate(10, paced=True)
    # The criterion: the lag over the last minute at most the first minute's + 1 s.
    assert minute(paced, first=False) <= minute(paced, first=True) + 1.0, (minute(paced, True), minute(paced, False))
    assert max(lag for _, lag in paced) < 20.0


@pytest.mark.slow
def test_a_session_whose_voice_is_too_slow_speaks_faster_and_logs_the_rate(data, tmp_path):
    # The fake voice takes 0.8 s a word (the fake ASR hears one every 0.4 s): twice the source.
    config = load_config("fake", ["simultaneous.mode=simultaneous", "simultaneous.trim_s=30", "tts.seconds_per_word=0.8",
                                  "tts.pause_s=0.5", "audio.lag_s=1.0"], src_lang="es", tgt_lang="en")
    with Engine(config) as engine:
        result = engine.session(input=str(data / "fleurs-es-000.ogg"), output=str(tmp_path / "o.wav")).run()
    spoken = [r for r in result.records if r.latency_s is not None]
    rates = [r.rate for r in spoken]
    assert rates[0] == 1.0  # nothing was waiting to be heard yet
    assert max(rates) > 1.0 and all(1.0 <= r <= 1.25 for r in rates), rates
    for r in spoken:  # what was said at a faster rate is shorter by that rate, pause cut to 0.1 s
        words = len(r.tgt_text.split())
        natural = words * 0.8 + (0.5 if r.rate == 1.0 else 0.1)
        if r.rate > 1.0:
            assert r.out_dur_s == pytest.approx(words * 0.8 / r.rate + 0.1, abs=0.02), r
        else:
            assert r.out_dur_s <= natural + 0.02
    assert "sped up" in format_table(summarize(result.records))
