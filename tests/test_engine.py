"""The engine with scripted fake backends and the real Silero VAD: order, drain, abort, failures, latency."""

import re
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from s3tvr import Engine, load_config
from s3tvr.errors import InputError
from s3tvr.latency.record import read_log
from s3tvr.live.messages import AudioChunk, UtteranceEnd, UttInfo
from s3tvr.live.pipeline import Reorderer
from s3tvr.live.sinks import FileSink
from s3tvr.live.sources import FileSource

NARRATION = "realtimestt_asr-reference.wav"  # 52 s, 9 sentences with pauses
VIDEO = "open-dubbing_englishvideo.mp4"  # 10 s


def fake(*overrides, realtime=False):
    return load_config("fake", [*overrides, f"audio.realtime={realtime}"], src_lang="en", tgt_lang="es")


@pytest.mark.slow
def test_drain_translates_every_utterance_in_order_and_logs_it(data, tmp_path):
    out, log = tmp_path / "out.wav", tmp_path / "latency.jsonl"
    result = Engine(fake()).session(input=str(data / NARRATION), output=str(out), log_path=str(log)).run()

    assert result.exit_code == 0 and not result.aborted
    ids = [r.utt_id for r in result.records]
    assert ids == list(range(9))
    lines = read_log(log)
    assert lines == result.records  # the log reads back as the records the run returned
    for rec in lines:
        assert rec.src_lang == "en" and rec.tgt_lang == "es"
        assert rec.seg_end_s > rec.seg_start_s
        assert set(rec.stages) == {"asr", "mt", "tts"}
        assert all(s.backend == "fake" and s.end >= s.start for s in rec.stages.values())
        assert rec.t_speech_end <= rec.t_vad_emit <= rec.stages["asr"].start
        assert rec.t_first_audio >= rec.stages["tts"].first_out
        assert rec.latency_s == pytest.approx(rec.t_first_audio - rec.t_speech_end, abs=1e-3)
        assert rec.tgt_text.startswith("[es] utterance") and rec.out_dur_s > 0 and rec.error is None
    # The file holds each translation where it was spoken, and nothing half-written is left.
    audio, rate = sf.read(out)
    assert not (tmp_path / "out.wav.partial").exists()
    last = lines[-1]
    spoken_until = last.seg_start_s + last.out_dur_s
    assert len(audio) / rate == pytest.approx(max(spoken_until, sf.info(data / NARRATION).duration), abs=0.01)
    first_sound = np.flatnonzero(np.abs(audio) > 0.01)[0] / rate
    assert first_sound == pytest.approx(lines[0].seg_start_s, abs=0.05)


def test_order_is_kept_when_a_later_utterance_finishes_first(data, tmp_path):
    # Two ASR workers; utterance 0 takes 1.2 s, the rest 0.02 s, so utterance 1 overtakes it.
    cfg = fake("asr.delays=[1.2, 0.02, 0.02]", "pipeline.workers={asr: 2}")
    result = Engine(cfg).session(input=str(data / NARRATION), output=str(tmp_path / "o.wav")).run()

    recs = {r.utt_id: r for r in result.records}
    assert recs[1].stages["asr"].end < recs[0].stages["asr"].end, "the scenario did not happen"
    assert [r.utt_id for r in result.records] == sorted(recs)
    firsts = [recs[i].t_first_audio for i in sorted(recs)]
    assert firsts == sorted(firsts)


def test_reorderer_streams_the_oldest_and_holds_later_utterances():
    def utt(i):
        return UttInfo(i, "en", "es", 0, 1, 0, 0)

    u0, u1, u2 = utt(0), utt(1), utt(2)
    chunk = lambda u: AudioChunk(u, np.zeros(4, np.float32), 16000)  # noqa: E731
    r = Reorderer()
    assert r.push(chunk(u1)) == [] and r.push(UtteranceEnd(u1)) == []
    c2 = chunk(u2)
    assert r.push(c2) == []
    c0 = chunk(u0)
    assert r.push(c0) == [c0]  # the oldest streams at once
    released = r.push(UtteranceEnd(u0))
    assert [type(m).__name__ for m in released] == ["UtteranceEnd", "AudioChunk", "UtteranceEnd", "AudioChunk"]
    assert [m.utt.utt_id for m in released] == [0, 1, 1, 2]
    assert r.push(UtteranceEnd(u0)) == []  # a duplicate end of a closed utterance is dropped


def test_one_failing_utterance_does_not_stop_the_others(data, tmp_path):
    log = tmp_path / "l.jsonl"
    result = Engine(fake("asr.fail_on=[1]", "tts.fail_on=[3]")).session(input=str(data / NARRATION), log_path=str(log),
                        output=str(tmp_path / "o.wav")).run()

    assert result.exit_code == 0
    recs = {r.utt_id: r for r in read_log(log)}
    assert sorted(recs) == list(range(9))
    assert "asr: RuntimeError: scripted failure of utterance 1" == recs[1].error
    assert recs[1].latency_s is None and recs[1].out_dur_s == 0
    assert recs[3].error.startswith("tts: RuntimeError")
    assert all(recs[i].error is None and recs[i].latency_s is not None for i in (0, 2, 4, 5, 6, 7, 8))


def test_abort_stops_promptly_and_keeps_finished_utterances(data, tmp_path):
    # Utterance 0 is quick; the TTS then takes 30 s per chunk, so only an abort can end the run soon.
    log = tmp_path / "l.jsonl"
    translator = Engine(fake("tts.delays=[0.01, 30]")).session(input=str(data / NARRATION), log_path=str(log),
                            output=str(tmp_path / "o.wav"))
    asked = {}

    def stop_after_first(rec):
        if "t" not in asked:
            asked["t"] = time.monotonic()
            threading.Timer(0.3, translator.cancel).start()

    translator.on_record = stop_after_first
    result = translator.run()

    assert result.aborted and result.exit_code == 130
    # The run returned without waiting for the model call in flight: the TTS worker is still in its 30 s chunk.
    assert not translator.pipeline.join(timeout=0)
    assert [r.utt_id for r in read_log(log)] == [0]
    assert (tmp_path / "o.wav").exists() and not (tmp_path / "o.wav.partial").exists()


@pytest.mark.slow
def test_latency_is_endpoint_wait_plus_scripted_compute(data, tmp_path):
    # Real-time replay: latency is the 0.5 s endpoint silence plus the scripted stage time, and the
    # engine's overhead on top. Only the lower bounds are the engine's behaviour; how small the
    # overhead is depends on the machine, and benchmarks/bench_latency.py measures it (overhead ratio).
    cfg = fake("asr.delays=[0.3]", "mt.delays=[0.05]", "tts.delays=[0.1]", "tts.chunks=2", realtime=True)
    result = Engine(cfg).session(input=str(data / VIDEO), output=str(tmp_path / "o.wav")).run()

    assert len(result.records) >= 3
    for rec in result.records:
        wait = rec.t_vad_emit - rec.t_speech_end
        assert wait >= 0.4, wait  # 500 ms endpoint, counted in 32 ms windows
        scripted = 0.3 + 0.05 + 0.1  # TTS's first chunk only: playback starts on it
        assert rec.latency_s >= wait + scripted, (rec.latency_s, wait)
        assert rec.stage_compute()["asr"] >= 0.3 and rec.stage_compute()["tts"] >= 0.1  # each stage's own time, stamped


class _MicLike(FileSource):
    """A file the translator treats as a microphone (so half-duplex applies). While it replays the
    first ``playing_until_s`` of the file, it holds the gate as the speaker would while playing."""

    is_microphone = True
    playing_until_s = 0.0
    gate = None

    def blocks(self, stop):
        for i, block in enumerate(super().blocks(stop)):
            if self.gate is not None:
                playing = (i + 1) * 512 / 16000 < self.playing_until_s
                self.gate.hold(time.monotonic() + 10 if playing else 0)
            yield block


@pytest.mark.slow
def test_half_duplex_ignores_the_microphone_while_the_translation_plays(data, tmp_path):
    engine = Engine(fake())
    source = _MicLike(data / NARRATION, realtime=False)
    source.playing_until_s = 26.0
    gated = engine.session(source=source, sink=FileSink(tmp_path / "g.wav"))
    gated.gate.tail_s = 0
    source.gate = gated.gate
    heard = gated.run().records
    # Of the 9 sentences only those spoken after playback ended are heard (one may start mid-way).
    assert 4 <= len(heard) <= 5
    assert all(r.seg_start_s >= 26.0 - 0.35 for r in heard)

    duplex = Engine(fake("audio.full_duplex=true")).session(  # headphones: the mic is always open
        source=_MicLike(data / NARRATION, realtime=False), sink=FileSink(tmp_path / "d.wav"))
    assert duplex.gate is None
    assert len(duplex.run().records) == 9


def test_speaker_playback_closes_the_gate_until_its_tail_has_passed():
    from s3tvr.audio.streams import Resampler
    from s3tvr.live.sinks import PlaybackGate, SpeakerSink

    gate = PlaybackGate(tail_s=0.3)
    sink = SpeakerSink(jitter_ms=0, gate=gate)
    sink.rate, sink._resampler = 16000, Resampler(16000)
    utt = UttInfo(0, "en", "es", 0, 1, 0, 0)
    assert gate.is_open()
    sink.write(AudioChunk(utt, np.full(1600, 0.1, np.float32), 16000))
    sink.end(utt)
    out = np.zeros((800, 1), np.float32)
    now = time.monotonic()  # before the gate is held: a stall here cannot make it look open already
    sink._callback(out, 800, None, None)  # the device asks for 50 ms
    assert not gate.is_open(now) and utt.t_first_audio is not None
    assert np.allclose(out[:, 0], 0.1)
    now = time.monotonic()  # before the last hold: the rest of the audio, then the end marker
    sink._callback(out, 800, None, None)
    sink._callback(out, 800, None, None)  # the end marker: played
    assert [u.utt_id for u in sink.finished()] == [0] and utt.t_play_end >= utt.t_first_audio
    assert not gate.is_open(now) and gate.is_open(time.monotonic() + 0.4)  # held for its 0.3 s tail


def test_record_dir_keeps_each_utterances_input_and_translation(data, tmp_path):
    rec_dir = tmp_path / "rec"
    result = Engine(fake()).session(input=str(data / VIDEO), output=str(tmp_path / "o.wav"), record_dir=str(rec_dir)).run()
    n = len(result.records)
    assert n >= 3
    for r in result.records:
        heard, rate = sf.read(rec_dir / f"utt{r.utt_id:05d}_in.wav")
        assert rate == 16000 and len(heard) / rate == pytest.approx(r.seg_end_s - r.seg_start_s, abs=0.45)
        said, rate = sf.read(rec_dir / f"utt{r.utt_id:05d}_out.wav")
        assert len(said) / rate == pytest.approx(r.out_dur_s, abs=0.01)
    assert not list(rec_dir.glob("*.partial"))


def test_a_session_may_ask_for_another_source_language_where_the_asr_hears_any(data):
    """s3tvr serve: each connection names its pair. Whisper's translate task hears any of its
    languages into English, so one engine serves them all; a pair the loaded models cannot make
    is refused with the reason, before anything loads."""
    engine = Engine(load_config("offline", src_lang="es", tgt_lang="en"))
    engine.check_languages("de", "en")
    session = engine.session(input=str(data / "fleurs-es-000.ogg"), src_lang="de")
    assert (session.segmenter.src_lang, session.segmenter.tgt_lang) == ("de", "en")
    for pair, reason in ((("de", "fr"), "loaded for es->en (any source into en), not de->fr"),
                         (("xx", "en"), "does not know the source language 'xx'"), (("en", "en"), "both en")):
        with pytest.raises(InputError, match=re.escape(reason)):
            engine.session(input=str(data / "fleurs-es-000.ogg"), src_lang=pair[0], tgt_lang=pair[1])
    # A backend built for its pair (the fakes, like NeMo or Marian) serves that pair only.
    with pytest.raises(InputError, match=re.escape("loaded for es->en, not de->en")):
        Engine(load_config("fake", src_lang="es", tgt_lang="en")).check_languages("de", "en")


def test_the_fake_tts_speaks_a_long_sentence_clause_by_clause():
    from s3tvr.backends.fake import FakeTts, FakeTtsConfig

    text = "However, due to the slow channels of that time, styles in the west could lag behind by up to thirty years."
    tts = FakeTts(FakeTtsConfig(delays=[0.0], chunks=1, seconds_per_word=0.1, sample_rate=10000), "es", "en")
    assert [len(c) for c in tts.speak(text)] == [9 * 1000, 12 * 1000]  # "However, … that time," (9 words), then the other 12
    whole = FakeTts(FakeTtsConfig(delays=[0.0], chunks=1, seconds_per_word=0.1, sample_rate=10000, clauses=False), "es", "en")
    assert [len(c) for c in whole.speak(text)] == [21 * 1000]
    assert [len(c) for c in whole.speak(text, rate=2.0)] == [21 * 500]


def test_the_stage_adapters_stamp_what_the_models_give_on_the_utterance():
    """The models know nothing of utterances; their stages pass each call what the utterance
    carries (its language, rate, id) and stamp the texts, the skip and the spoken length on it."""
    from s3tvr.backends.fake import FakeAsr, FakeAsrConfig, FakeMt, FakeMtConfig, FakeTts, FakeTtsConfig
    from s3tvr.live.messages import SpeechSegment, Transcript, Translation
    from s3tvr.live.stages import AsrStage, MtStage, TtsStage, stage_for

    utt = UttInfo(7, "en", "es", 0, 1, 0, 0, rate=1.25)
    segment = SpeechSegment(utt, np.zeros(16000, np.float32), np.zeros(0, np.float32))
    asr = FakeAsr(FakeAsrConfig(delays=[0.0]), "en", "es")
    (heard,) = AsrStage(asr).process(segment)
    assert heard == Transcript(utt, "utterance 7 lasting 1.0 seconds", "en") and utt.src_text == heard.text
    (said,) = MtStage(FakeMt(FakeMtConfig(delays=[0.0]), "en", "es")).process(heard)
    assert said == Translation(utt, "[es] utterance 7 lasting 1.0 seconds") and utt.tgt_text == said.text
    tts = stage_for(FakeTts(FakeTtsConfig(delays=[0.0], chunks=2, seconds_per_word=0.5, sample_rate=8000), "en", "es"))
    assert isinstance(tts, TtsStage) and (tts.name, tts.backend, tts.thread_safe) == ("tts", "fake", True)
    chunks = list(tts.process(said))
    assert [c.sample_rate for c in chunks] == [8000, 8000] and all(c.utt is utt for c in chunks)
    assert utt.out_dur_s == pytest.approx(6 * 0.5 / 1.25)  # its six words, at the utterance's rate
    silent = UttInfo(8, "en", "es", 0, 1, 0, 0)
    asr.config.text = ""
    assert list(AsrStage(asr).process(SpeechSegment(silent, np.zeros(1600, np.float32), np.zeros(0, np.float32)))) == []
    assert silent.skipped == "no words recognised"
    with pytest.raises(RuntimeError, match="scripted failure of utterance 8"):  # the id reaches the model
        list(AsrStage(FakeAsr(FakeAsrConfig(delays=[0.0], fail_on=[8]), "en", "es")).process(
            SpeechSegment(silent, np.zeros(1600, np.float32), np.zeros(0, np.float32))))


def test_a_streamed_translation_is_spoken_piece_by_piece_as_one_utterance(data, tmp_path):
    """A translator that streams (the LLM) sends its translation in pieces; the TTS speaks each
    as it comes, and the utterance still ends once, in order, with the whole text in its record."""
    log = tmp_path / "latency.jsonl"
    cfg = fake("mt.stream=true", "mt.delays=[0.3]", "mt.fail_on=[4]", "tts.chunks=1", "audio.lag_s=600")  # no speed-up
    result = Engine(cfg).session(input=str(data / NARRATION), output=str(tmp_path / "o.wav"), log_path=str(log)).run()
    assert [r.utt_id for r in result.records] == list(range(9)) and read_log(log) == result.records
    for rec in result.records:
        if rec.utt_id == 4:  # failed in MT: ended once, with the error, nothing spoken
            assert rec.error.startswith("mt: RuntimeError") and rec.out_dur_s == 0
            continue
        assert rec.error is None and rec.tgt_text == f"[es] {rec.src_text}"
        # every piece spoken: the fake TTS's 0.3 s per word, over all the translation's words
        assert rec.out_dur_s == pytest.approx(0.3 * len(rec.tgt_text.split()), abs=0.01)
        # the TTS started on the first piece, before the translation was finished
        assert rec.stages["tts"].first_out < rec.stages["mt"].end
