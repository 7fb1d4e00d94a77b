"""The latency log's record: the exact line the collector writes, a frozen record that reads back
equal, and logs from before a field existed read the way the reports have always read them."""

import dataclasses
import json
import math

import pytest

from s3tvr.errors import InputError
from s3tvr.latency.record import Clock, Collector, UtteranceRecord, read_log
from s3tvr.live.messages import StageTiming, UttInfo

CLOCK = Clock(t0_mono=12.5, t0_unix=1_700_000_000.25)

# The line today's log holds for utterance() below, as written before records were typed (the
# WebSocket protocol's latency record is the same object): keys, order, rounding and all.
LINE = ('{"utt_id": 3, "src_lang": "es", "tgt_lang": "en", "seg_start_s": 1.235, "seg_end_s": 4.568, '
        '"t_speech_end": 100.123456789, "t_vad_emit": 100.6, "stages": {"asr": {"start": 100.7, "end": 101.2, '
        '"first_out": null, "backend": "fake"}, "tts": {"start": 101.3, "end": 102.0, "first_out": 101.5, "backend": "piper"}}, '
        '"source_id": 3, "last_clause": true, "t_speech_start": 98.1, "t_first_audio": 101.61234567, "t_play_end": 103.2, '
        '"played": [[101.6123, 0.5123], [102.2, 1.0]], "latency_s": 1.4889, "src_text": "hola ñ", "tgt_text": "hello", '
        '"out_dur_s": 1.512, "rate": 1.235, "asr_pacing": "slowed", "mt_note": "fallback apertium: late", "glossary_terms": 2, '
        '"error": null, "skipped": null, "t0_unix": 1700000000.25, "t0_mono": 12.5}')

# A line as the first s3tvr wrote it: no source_id, last_clause, t_speech_start, played, rate, asr_pacing, mt_note
# or glossary_terms.
OLD_LINE = ('{"utt_id": 7, "src_lang": "en", "tgt_lang": "es", "seg_start_s": 3.2, "seg_end_s": 5.9, "t_speech_end": 40.0, '
            '"t_vad_emit": 40.5, "stages": {"asr": {"start": 40.5, "end": 41.0, "first_out": null, "backend": "faster-whisper"}}, '
            '"t_first_audio": 41.8, "t_play_end": 44.3, "latency_s": 1.8, "src_text": "hello there", "tgt_text": "hola", '
            '"out_dur_s": 2.5, "error": null, "skipped": null, "t0_unix": 1700000000.0, "t0_mono": 30.0}')


def utterance():
    utt = UttInfo(3, "es", "en", 1.23456, 4.56789, 100.123456789, 100.6, t_speech_start=98.1)
    utt.stages = {"asr": StageTiming(100.7, 101.2, None, "fake"), "tts": StageTiming(101.3, 102.0, 101.5, "piper")}
    utt.src_text, utt.tgt_text = "hola ñ", "hello"
    utt.t_first_audio, utt.t_play_end = 101.61234567, 103.2
    utt.played = [(101.61234567, 0.512345), (102.2, 1.0)]
    utt.out_dur_s, utt.rate, utt.asr_pacing, utt.mt_note = 1.5123456, 1.23456, "slowed", "fallback apertium: late"
    utt.glossary_terms = 2
    return utt


def test_the_collector_writes_todays_line_and_it_reads_back_equal(tmp_path):
    log = tmp_path / "l.jsonl"
    collector = Collector(log, CLOCK)
    rec = collector.record(utterance())
    collector.close()
    assert log.read_text(encoding="utf-8") == LINE + "\n"
    assert read_log(log) == collector.records == [rec]
    assert rec.played == ((101.6123, 0.5123), (102.2, 1.0)) and rec.latency_s == 1.4889 and rec.pair == "es-en"
    assert rec.stage_compute() == {"asr": pytest.approx(0.5), "tts": pytest.approx(0.2)}  # the TTS to its first chunk


def test_a_fresh_record_round_trips_through_json():
    for utt in (utterance(), UttInfo(4, "en", "zh", 5.0, 6.0, 200.0, 200.5, source_id=2, last_clause=False, error="asr: boom")):
        rec = UtteranceRecord.from_utt(utt, CLOCK)
        assert UtteranceRecord.from_json(json.loads(json.dumps(rec.to_json()))) == rec
    assert rec.source_id == 2 and rec.played == () and rec.latency_s is None


def test_a_record_is_frozen():
    rec = UtteranceRecord.from_utt(utterance(), CLOCK)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.latency_s = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.stages["asr"].end = 0.0


def test_an_old_line_reads_as_it_meant_then(tmp_path):
    rec = UtteranceRecord.from_json(json.loads(OLD_LINE))
    # Each utterance its own source and its last clause, spoken at the natural rate, unpaced.
    assert (rec.source_id, rec.last_clause, rec.rate, rec.asr_pacing, rec.mt_note, rec.t_speech_start) == (7, True, 1.0, "", "", None)
    assert rec.glossary_terms == 0  # no glossary then
    assert rec.played == ((41.8, 2.5),)  # one chunk, first audio to the end of play
    assert rec.stages["asr"].backend == "faster-whisper" and rec.latency_s == 1.8 and rec.tgt_text == "hola"
    # Older still, or hand-made: the first audio from the end of speech and the latency, its length
    # from out_dur_s, or not known at all.
    bare = {"utt_id": 1, "src_lang": "es", "tgt_lang": "en", "t_speech_end": 10.0, "latency_s": 0.5}
    assert UtteranceRecord.from_json({**bare, "out_dur_s": 2.0}).played == ((10.5, 2.0),)
    [(start, sec)] = UtteranceRecord.from_json(bare).played
    assert start == 10.5 and math.isnan(sec)
    assert UtteranceRecord.from_json({**bare, "latency_s": None}).played == ()  # never spoken
    log = tmp_path / "old.jsonl"
    log.write_text(OLD_LINE + "\n" + LINE + "\n", encoding="utf-8")
    assert read_log(log) == [rec, UtteranceRecord.from_utt(utterance(), CLOCK)]  # old and new lines in one log


def test_a_line_that_is_no_record_is_a_one_line_error(tmp_path):
    log = tmp_path / "l.jsonl"
    log.write_text(OLD_LINE + "\n" + json.dumps({"src_lang": "es", "tgt_lang": "en", "latency_s": 1.0}) + "\n")
    with pytest.raises(InputError, match="line 2 is not a latency record \\(no utt_id\\)"):
        read_log(log)
    with pytest.raises(ValueError, match="played is not a list"):
        UtteranceRecord.from_json({**json.loads(OLD_LINE), "played": [[1.0]]})
