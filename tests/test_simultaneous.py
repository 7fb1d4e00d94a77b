"""Simultaneous mode through the real engine, segmenter and sinks, with fakes whose ASR hears one
word per 0.4 s of audio (a sentence every 8 words) at scripted speeds: translation starts while
the speaker is still talking, and no word is lost, doubled or reordered."""

import re
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from s3tvr import Engine, load_config
from s3tvr.audio.decode import load_audio
from s3tvr.backends.fake import FakeAsr, FakeAsrConfig
from s3tvr.config import resolve_mode
from s3tvr.latency import format_table, summarize
from s3tvr.messages import SAMPLE_RATE
from s3tvr.offsets import source_latencies
from s3tvr.simultaneous import PassPacer
from s3tvr.vad import WINDOW_S, speech_regions

CLIP = "fleurs-es-000.ogg"  # 12.8 s of Spanish, a long first utterance


def simultaneous(**sections):
    # No buffer trimming: the fake's words are numbered from the start of the audio it is given,
    # so it cannot model a trimmed buffer (tests/test_streaming.py tests trimming, with real Whisper too).
    overrides = ["simultaneous.mode=simultaneous", "simultaneous.trim_s=30", *(f"{k}={v}" for k, v in sections.items())]
    return load_config("fake", overrides, src_lang="es", tgt_lang="en")


def words_of(records, source_id):
    text = " ".join(r["src_text"] for r in records if r["source_id"] == source_id and r["src_text"])
    return [re.sub(r"[.\-]", "", w) for w in text.split()]


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """One real-time run of the clip, as a listener would hear it."""
    out = tmp_path_factory.mktemp("simul") / "o.wav"
    with Engine(simultaneous()) as engine:
        result = engine.session(input=str(data / CLIP), output=str(out)).run()
    return result, load_audio(data / CLIP)


def test_translation_starts_before_the_speaker_stops(run):
    result, _ = run
    assert not result.aborted and result.spoken >= 2
    first = result.records[0]
    last_of_first = next(r for r in result.records if r["source_id"] == first["source_id"] and r["last_clause"])
    # Its first clause was heard (played into the file) while the utterance was still being spoken.
    assert first["t_first_audio"] < last_of_first["t_speech_end"] - 1.0, (first, last_of_first)


def test_no_word_lost_doubled_or_reordered(run, data):
    result, audio = run
    regions = speech_regions(audio, load_config("fake").vad)
    sources = sorted({r["source_id"] for r in result.records})
    assert len(sources) == len(regions)
    for source_id, (start, end) in zip(sources, regions):
        # The final pass hears the whole segment: the fake's words of it, each once, in order.
        expected = int(round((end - start) / WINDOW_S)) * WINDOW_S / FakeAsr.WORD_S
        words = words_of(result.records, source_id)
        assert words == [f"w{k}" for k in range(len(words))], words
        assert abs(len(words) - expected) <= 2, (len(words), expected)
    ids = [r["utt_id"] for r in result.records]
    assert ids == list(range(len(ids)))  # clauses in spoken order, each once
    ends = [r for r in result.records if r["last_clause"]]
    assert [r["source_id"] for r in ends] == sources  # every source utterance closed once


def test_translation_of_each_clause_is_what_was_spoken(run):
    result, _ = run
    for r in result.records:
        if r["src_text"]:
            assert r["tgt_text"] == f"[en] {r['src_text']}" and r["latency_s"] is not None


def test_a_pass_slower_than_the_step_is_never_queued(data, tmp_path):
    # Passes of 1.5 s against a 0.5 s step: the feeder waits for the ASR instead of queueing
    # stale looks, and the run still drains with every word.
    cfg = simultaneous(**{"simultaneous.step_s": 0.5, "asr.delays": "[1.5]"})
    with Engine(cfg) as engine:
        session = engine.session(input=str(data / CLIP), output=str(tmp_path / "o.wav"))
        result = session.run()
    assert not result.aborted
    assert words_of(result.records, 0)[:3] == ["w0", "w1", "w2"]


def test_abort_stops_within_two_seconds(data, tmp_path):
    with Engine(simultaneous()) as engine:
        session = engine.session(input=str(data / CLIP), output=str(tmp_path / "o.wav"))
        timer = threading.Timer(5.0, session.cancel)
        timer.start()
        t0 = time.monotonic()
        result = session.run()
        took = time.monotonic() - t0
    assert result.aborted and took < 5.0 + 2.0, took


def test_bad_clause_settings_are_one_line_errors():
    from conftest import one_line_error, s3tvr

    one_line_error(s3tvr("run", "es", "--config", "fake", "--mode", "simultaneous", "--set", "simultaneous.clause_min_words=9",
                         "--set", "simultaneous.clause_max_words=4"), "clause_min_words")
    one_line_error(s3tvr("run", "es", "--config", "fake", "--set", "simultaneous.mode=fast"), "sentence or simultaneous")
    one_line_error(s3tvr("run", "es", "--config", "fake", "--set", "simultaneous.step_s=0"), "between 0.2 and 5")


def test_samples_per_word_are_what_the_fake_promises():
    # The tests above count words by the fake's rate: guard that assumption.
    fake = FakeAsr(FakeAsrConfig(delays=[0.0]), "es", "en")
    words = fake.words(np.zeros(int(4.0 * SAMPLE_RATE), np.float32))
    assert [re.sub(r"[.\-]", "", w.text) for w in words] == [f"w{k}" for k in range(10)]
    assert [w.text.endswith(".") for w in words].index(True) == 7  # a sentence every 8 words


def test_auto_mode_is_simultaneous_on_a_gpu_and_sentence_on_a_cpu():
    # On this 2-core CPU simultaneous passes cost 1.7 CPU-seconds a second and end no sooner (README).
    cpu = load_config("fake")
    assert cpu.simultaneous.mode == "auto" and resolve_mode(cpu) == "sentence"
    assert resolve_mode(replace(cpu, device="cuda")) == "simultaneous"
    for mode in ("sentence", "simultaneous"):
        assert resolve_mode(replace(cpu, device="cuda", simultaneous=replace(cpu.simultaneous, mode=mode))) == mode



def test_passes_slow_down_then_stop_when_they_cost_more_than_the_budget():
    pacer = PassPacer(step_s=0.5, max_step_s=3.0, budget=0.5)
    assert pacer.passed(0.2, final=False) == "" and pacer.step_s == 0.5  # cheap: every step
    assert pacer.passed(1.0, final=False) == "" and (pacer.step_s, pacer.state) == (2.0, "slowed")  # half the time at most
    assert pacer.passed(1.6, final=False) == "slowed" and (pacer.step_s, pacer.state) == (3.0, "stopped")
    assert pacer.passed(4.0, final=True) == "stopped"  # the final pass recognised what the passes left
    assert (pacer.stopped, pacer.step_s) == (False, 3.0)  # the next utterance starts over, cautiously
    assert pacer.passed(0.3, final=False) == "slowed" and (pacer.step_s, pacer.state) == (0.6, "slowed")


def test_a_recognizer_slower_than_real_time_never_lets_the_lag_grow(data, tmp_path, caplog):
    """A 32 s talk (three FLEURS sentences, 1 s apart) with an ASR whose pass over the utterance so
    far takes 0.3 s plus 0.3 s per second heard: passes back to back would keep it busy all the time."""
    talk = np.concatenate([np.concatenate([load_audio(data / clip), np.zeros(SAMPLE_RATE, np.float32)])
                           for clip in ("fleurs-es-002.ogg", "fleurs-es-004.ogg", "fleurs-es-002.ogg")])
    sf.write(tmp_path / "talk.wav", talk, SAMPLE_RATE)
    cfg = simultaneous(**{"simultaneous.step_s": 0.5, "asr.delays": "[0.3]", "asr.delay_per_s": 0.3})
    with caplog.at_level("INFO", logger="s3tvr.simultaneous"), Engine(cfg) as engine:
        result = engine.session(input=str(tmp_path / "talk.wav"), output=str(tmp_path / "o.wav")).run()
    offsets = [s.end_offset for s in source_latencies(result.records)]
    assert not result.aborted and len(offsets) >= 3
    assert offsets[-1] <= offsets[0] + 1.0, offsets
    # Said, not silent: once each in the log, per clause in the latency log, and in the report.
    said = [r.message for r in caplog.records if r.message.startswith("simultaneous:")]
    assert len(said) == 2 and "passes every" in said[0] and "cannot keep pace" in said[1], said
    assert {r["asr_pacing"] for r in result.records} >= {"slowed", "stopped"}
    assert "recognition slowed for" in format_table(summarize(result.records))
