"""Simultaneous mode through the real engine, segmenter and sinks, with fakes whose ASR hears one
word per 0.4 s of audio (a sentence every 8 words) at scripted speeds: translation starts while
the speaker is still talking, and no word is lost, doubled or reordered."""

import re
import threading

import numpy as np
import pytest
import soundfile as sf

from s3tvr import Engine, load_config
from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import load_audio
from s3tvr.backends.fake import FakeAsr, FakeAsrConfig
from s3tvr.latency.field_metrics import source_latencies
from s3tvr.latency.report import format_table, summarize
from s3tvr.live.messages import DROPPED_TAIL
from s3tvr.live.segmenter import WINDOW_S, speech_regions
from s3tvr.live.simultaneous import PassPacer, auto_mode
from s3tvr.live.sources import FileSource

CLIP = "fleurs-es-000.ogg"  # 12.8 s of Spanish, a long first utterance


def simultaneous(**sections):
    # No buffer trimming: the fake's words are numbered from the start of the audio it is given,
    # so it cannot model a trimmed buffer (tests/test_agreement.py tests trimming, with real Whisper too).
    overrides = ["simultaneous.mode=simultaneous", "simultaneous.trim_s=30", *(f"{k}={v}" for k, v in sections.items())]
    return load_config("fake", overrides, src_lang="es", tgt_lang="en")


def words_of(records, source_id):
    text = " ".join(r.src_text for r in records if r.source_id == source_id and r.src_text)
    return [re.sub(r"[.\-]", "", w) for w in text.split()]


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """One real-time run of the clip, as a listener would hear it."""
    out = tmp_path_factory.mktemp("simul") / "o.wav"
    with Engine(simultaneous()) as engine:
        result = engine.session(input=str(data / CLIP), output=str(out)).run()
    return result, load_audio(data / CLIP)


@pytest.mark.slow
def test_translation_starts_before_the_speaker_stops(run):
    result, _ = run
    assert not result.aborted and result.spoken >= 2
    first = result.records[0]
    last_of_first = next(r for r in result.records if r.source_id == first.source_id and r.last_clause)
    # Its first clause was heard (played into the file) while the utterance was still being spoken.
    assert first.t_first_audio < last_of_first.t_speech_end - 1.0, (first, last_of_first)


@pytest.mark.slow
def test_no_word_lost_doubled_or_reordered(run, data):
    result, audio = run
    regions = speech_regions(audio, load_config("fake").vad)
    sources = sorted({r.source_id for r in result.records})
    assert len(sources) == len(regions)
    for source_id, (start, end) in zip(sources, regions):
        # The final pass hears the whole segment: the fake's words of it, each once, in order.
        expected = int(round((end - start) / WINDOW_S)) * WINDOW_S / FakeAsr.WORD_S
        words = words_of(result.records, source_id)
        assert words == [f"w{k}" for k in range(len(words))], words
        assert abs(len(words) - expected) <= 2, (len(words), expected)
    ids = [r.utt_id for r in result.records]
    assert ids == list(range(len(ids)))  # clauses in spoken order, each once
    ends = [r for r in result.records if r.last_clause]
    assert [r.source_id for r in ends] == sources  # every source utterance closed once


@pytest.mark.slow
def test_translation_of_each_clause_is_what_was_spoken(run):
    result, _ = run
    for r in result.records:
        if r.src_text:
            assert r.tgt_text == f"[en] {r.src_text}" and r.latency_s is not None


@pytest.mark.slow
def test_a_pass_slower_than_the_step_is_never_queued(data, tmp_path):
    # Passes of 1.5 s against a 0.5 s step: the feeder waits for the ASR instead of queueing
    # stale looks, and the run still drains with every word.
    cfg = simultaneous(**{"simultaneous.step_s": 0.5, "asr.delays": "[1.5]"})
    with Engine(cfg) as engine:
        session = engine.session(input=str(data / CLIP), output=str(tmp_path / "o.wav"))
        result = session.run()
    assert not result.aborted
    assert words_of(result.records, 0)[:3] == ["w0", "w1", "w2"]


@pytest.mark.slow
def test_a_tail_recognised_in_a_pause_is_spoken_when_the_pause_ends_the_utterance_and_dropped_when_it_does_not(data, tmp_path):
    # Real speech, a 0.8 s pause, more speech, then silence; the endpoint waits 1.5 s, a tentative pass
    # comes after 0.2 s of pause (every fake word ends a sentence, none is half heard: each pause may be the end).
    speech = load_audio(data / CLIP)
    pause, silence = np.zeros(int(0.8 * SAMPLE_RATE), np.float32), np.zeros(3 * SAMPLE_RATE, np.float32)
    sf.write(tmp_path / "in.wav", np.concatenate([speech[:4 * SAMPLE_RATE], pause, speech[4 * SAMPLE_RATE:8 * SAMPLE_RATE],
                                                  silence]), SAMPLE_RATE)
    cfg = simultaneous(**{"vad.endpoint_ms": 1500, "simultaneous.tail_after_ms": 200, "asr.sentence_words": 1,
                            "asr.half_heard": "false"})
    with Engine(cfg) as engine:
        result = engine.session(input=str(tmp_path / "in.wav"), output=str(tmp_path / "o.wav")).run()
    recs = result.records
    assert len({r.source_id for r in recs}) == 1  # the pause did not end the utterance
    dropped = [r for r in recs if r.skipped == DROPPED_TAIL]
    assert dropped and all(not r.played and r.t_first_audio is None and not r.last_clause for r in dropped)
    kept = [r for r in recs if r.skipped != DROPPED_TAIL]
    ends = [r for r in recs if r.last_clause]
    assert len(ends) == 1 and ends[0] in kept
    # The last clause was read in the pause: before the endpoint (1.5 s of silence) released the segment.
    assert ends[0].stages["asr"].start < ends[0].t_speech_end + 1.5
    # What was spoken holds every word once, in order: the dropped tail's words came again in later clauses.
    words = [re.sub(r"[.\-]", "", w) for r in kept for w in r.src_text.split()]
    assert words == [f"w{k}" for k in range(len(words))] and len(words) >= 15, words
    assert all(r.played for r in kept if r.src_text)


class _Counted(FileSource):
    """The clip replayed at real-time pace, counting how much of it was read."""

    read_s = 0.0

    def blocks(self, stop):
        for block in super().blocks(stop):
            self.read_s += len(block.samples) / SAMPLE_RATE
            yield block


@pytest.mark.slow
def test_abort_stops_promptly(data, tmp_path):
    source = _Counted(data / CLIP)
    with Engine(simultaneous()) as engine:
        session = engine.session(source=source, output=str(tmp_path / "o.wav"))
        threading.Timer(5.0, session.cancel).start()
        result = session.run()
    # Cancelled 5 s into the 12.8 s clip (real-time pace): the source was read no further than about
    # there (a run the cancel did not stop would read it all), whatever this machine's speed.
    assert result.aborted and source.read_s < 10.0, source.read_s


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


def test_auto_chooses_by_what_a_pass_costs_and_how_many_sessions_share_it():
    config = load_config("fake", ["simultaneous.mode=auto"]).simultaneous
    assert auto_mode(1.4, 1, config)[0] == "simultaneous"  # passes every 2.8 s: the pacer keeps them going
    mode, why = auto_mode(1.6, 1, config)  # every 3.2 s: it would leave each long utterance to its end
    assert mode == "sentence" and "takes 1.60 s here" in why and "max_step_s (3 s)" in why
    assert auto_mode(0.3, 5, config)[0] == "simultaneous" and auto_mode(0.3, 6, config)[0] == "sentence"  # passes shared
    assert auto_mode(None, 1, config)[0] == "sentence"  # an ASR that cannot recognise incrementally


@pytest.mark.slow
def test_auto_measures_the_asr_when_it_loads_and_gives_sessions_simultaneous_mode_while_it_keeps_pace(data, tmp_path, caplog):
    # The fake's pass over the 10 s calibration clip sleeps 0.01 + 10 x 0.01 = 0.11 s: passes every
    # 0.2 s, far inside max_step_s (3 s) however loaded the machine.
    cfg = load_config("fake", ["simultaneous.mode=auto", "asr.delays=[0.01]", "asr.delay_per_s=0.01"])
    with caplog.at_level("INFO", logger="s3tvr"), Engine(cfg) as engine:
        session = engine.session(input=str(data / "lj001-0004.ogg"), output=str(tmp_path / "o.wav"))  # 5 s, real time
        result = session.run()
        assert engine.pass_s >= 0.11 and session.mode == "simultaneous" and session.incremental is not None
        assert result.spoken >= 1 and result.records[0].stages["asr"].backend == "fake"
        assert engine.open_mode(live=False)[0] == "sentence"  # --fast: no speaker to keep pace with
        # Sessions share the ASR: with a pass of 0.55 s, passes come every 1.1 s for one, 2.2 s for
        # two, 3.3 s (over max_step_s) for three.
        engine.pass_s = 0.55
        assert [engine.open_mode()[0] for _ in range(3)] == ["simultaneous", "simultaneous", "sentence"]
        engine.close_mode("simultaneous")  # one simultaneous session ended: the next one fits again
        assert engine.open_mode()[0] == "simultaneous"
    said = [r.message for r in caplog.records if r.message.startswith("mode auto:")]
    assert len(said) == 1 and said[0].startswith("mode auto: simultaneous (a recognition pass over 10 s"), said


@pytest.mark.slow
def test_auto_gives_sentence_mode_where_passes_cannot_keep_pace(data, tmp_path):
    # 0.05 + 10 x 0.2 = 2.05 s a pass: every 4.1 s, beyond max_step_s.
    cfg = load_config("fake", ["simultaneous.mode=auto", "asr.delays=[0.05]", "asr.delay_per_s=0.2"])
    with Engine(cfg) as engine:
        session = engine.session(input=str(data / "lj001-0004.ogg"), output=str(tmp_path / "o.wav"))
        result = session.run()
    assert session.mode == "sentence" and session.incremental is None and result.spoken == 1
    assert result.records[0].source_id == result.records[0].utt_id == 0


def test_passes_slow_down_then_stop_when_they_cost_more_than_the_budget():
    pacer = PassPacer(step_s=0.5, max_step_s=3.0, budget=0.5)
    assert pacer.passed(0.2, final=False) == "" and pacer.step_s == 0.5  # cheap: every step
    assert pacer.passed(1.0, final=False) == "" and (pacer.step_s, pacer.state) == (2.0, "slowed")  # half the time at most
    assert pacer.passed(1.6, final=False) == "slowed" and (pacer.step_s, pacer.state) == (3.0, "stopped")
    assert pacer.passed(4.0, final=True) == "stopped"  # the final pass recognised what the passes left
    assert (pacer.stopped, pacer.step_s) == (False, 3.0)  # the next utterance starts over, cautiously
    assert pacer.passed(0.3, final=False) == "slowed" and (pacer.step_s, pacer.state) == (0.6, "slowed")


@pytest.mark.slow
def test_a_recognizer_slower_than_real_time_never_lets_the_lag_grow(data, tmp_path, caplog):
    """A 32 s talk (three FLEURS sentences, 1 s apart) with an ASR whose pass over the utterance so
    far takes 0.3 s plus 0.3 s per second heard: passes back to back would keep it busy all the time."""
    talk = np.concatenate([np.concatenate([load_audio(data / clip), np.zeros(SAMPLE_RATE, np.float32)])
                           for clip in ("fleurs-es-002.ogg", "fleurs-es-004.ogg", "fleurs-es-002.ogg")])
    sf.write(tmp_path / "talk.wav", talk, SAMPLE_RATE)
    cfg = simultaneous(**{"simultaneous.step_s": 0.5, "asr.delays": "[0.3]", "asr.delay_per_s": 0.3})
    with caplog.at_level("INFO", logger="s3tvr.live.simultaneous"), Engine(cfg) as engine:
        result = engine.session(input=str(tmp_path / "talk.wav"), output=str(tmp_path / "o.wav")).run()
    offsets = [s.end_offset for s in source_latencies(result.records)]
    assert not result.aborted and len(offsets) >= 3
    assert offsets[-1] <= offsets[0] + 1.0, offsets
    # Said, not silent: once each in the log, per clause in the latency log, and in the report.
    said = [r.message for r in caplog.records if r.message.startswith("simultaneous:")]
    assert len(said) == 2 and "passes every" in said[0] and "cannot keep pace" in said[1], said
    assert {r.asr_pacing for r in result.records} >= {"slowed", "stopped"}
    assert "recognition slowed for" in format_table(summarize(result.records))
