"""Latency as the simultaneous translation field reports it (StartOffset, EndOffset, first audio
after the end of speech, LAAL and YAAL by OmniSTEval), checked against values worked out by hand;
and the sinks' ``played`` stamps that it is computed from, against the audio a run writes."""

import json
import math
import time

import numpy as np
import pytest
import soundfile as sf

from s3tvr.audio.streams import Resampler
from s3tvr.latency.field_metrics import omnisteval_lags, source_latencies, word_delays
from s3tvr.latency.record import Clock, UtteranceRecord, read_log
from s3tvr.latency.report import summarize
from s3tvr.live.messages import AudioChunk, StageTiming, UttInfo
from s3tvr.live.sinks import FileSink, SpeakerSink
from s3tvr.live.sources import Source

from conftest import s3tvr

CLOCK = Clock(t0_mono=90.0, t0_unix=1_700_000_000.0)


def record(utt_id, t_start, t_end, played, text, source_id=None, last=True):
    """A log record as the collector writes it, from an utterance the sink stamped by hand."""
    utt = UttInfo(utt_id, "es", "en", seg_start_s=t_start - 90.0, seg_end_s=t_end - 90.0, t_speech_end=t_end,
                  t_vad_emit=t_end + 0.4, source_id=source_id, last_clause=last, t_speech_start=t_start)
    utt.played = list(played)
    utt.tgt_text = text
    if played:
        utt.t_first_audio, utt.t_play_end = played[0][0], played[-1][0] + played[-1][1]
        utt.out_dur_s = sum(sec for _, sec in played)
    else:
        utt.skipped = "end of the utterance"
    return UtteranceRecord.from_json(json.loads(json.dumps(UtteranceRecord.from_utt(utt, CLOCK).to_json())))  # as read back


# Sentence mode: two utterances, each its own source.
#
# Utterance 0: speech 100.0-102.0 (2 s); "aa bb cc dd" heard in two 1 s chunks from 102.5 to 104.5.
#   StartOffset 102.5-100 = 2.5; EndOffset 104.5-102 = 2.5; first audio 102.5-102 = 0.5.
#   Equal words share the 2 s of audio: each is heard whole at 0.5, 1.0, 1.5, 2.0 s into it, i.e.
#   103.0, 103.5, 104.0, 104.5: delays from the speech start 3.0, 3.5, 4.0, 4.5 s.
#   LAAL: the first delay is past the source's 2 s, so LAAL is that delay: 3.0.
#   YAAL (long-form, no recording end: every word): |Y|/|X| = 4/2, so word i is owed (i-1)*0.5 s:
#   (3.0 + 3.0 + 3.0 + 3.0) / 4 = 3.0.
# Utterance 1: speech 110.0-114.0 (4 s); "one two" in one 1.5 s chunk from 114.8.
#   StartOffset 4.8; EndOffset 116.3-114 = 2.3; first audio 0.8.
#   Words heard whole at 114.8+0.75 and 114.8+1.5: delays 5.55, 6.3.
#   LAAL 5.55 (past the source's 4 s); YAAL: |Y|/|X| = 2/4, 2 s per word: (5.55 + (6.3-2)) / 2 = 4.925.
def sentence_log():
    return [record(0, 100.0, 102.0, [(102.5, 1.0), (103.5, 1.0)], "aa bb cc dd"),
            record(1, 110.0, 114.0, [(114.8, 1.5)], "one two")]


# Simultaneous mode: five clauses of two source utterances.
#
# Source 0: speech 200.0-206.0 (6 s), three clauses:
#   clause 0 "aa bb" in [203.0, +1.0]: words heard whole at 203.5, 204.0
#   clause 1 "cc" in [204.0, +0.5] and, the TTS falling behind, [205.0, +0.5]: its word ends at 205.5
#   clause 2 (last) "dd ee" in [206.5, +1.0]: 207.0, 207.5
#   StartOffset 203.0-200 = 3.0; EndOffset 207.5-206 = 1.5; first audio (of its last clause) 206.5-206 = 0.5.
#   Delays from 200: 3.5, 4.0, 5.5, 7.0, 7.5; |X| = 6 s, |Y| = 5 words: word i owed (i-1)*1.2 s.
#   LAAL stops at the first word heard after the source ended (7.0, included):
#   (3.5 + (4.0-1.2) + (5.5-2.4) + (7.0-3.6)) / 4 = (3.5+2.8+3.1+3.4)/4 = 3.2.
#   YAAL takes every word: (12.8 + (7.5-4.8)) / 5 = 15.5/5 = 3.1.
# Source 1: speech 210.0-213.0 (3 s); clause 3 "ff" in [212.6, +0.8]; its last clause (4) is empty,
#   carrying only the end of speech.
#   StartOffset 2.6; EndOffset 213.4-213 = 0.4; first audio 212.6-213 = -0.4 (its last words were
#   already being spoken when the speaker stopped).
#   Delay 3.4 > 3 s: LAAL 3.4; YAAL 3.4.
def clause_log():
    return [record(0, 200.0, 202.0, [(203.0, 1.0)], "aa bb", source_id=0, last=False),
            record(1, 200.0, 204.5, [(204.0, 0.5), (205.0, 0.5)], "cc", source_id=0, last=False),
            record(2, 200.0, 206.0, [(206.5, 1.0)], "dd ee", source_id=0),
            record(3, 210.0, 212.0, [(212.6, 0.8)], "ff", source_id=1, last=False),
            record(4, 210.0, 213.0, [], "", source_id=1)]


def metrics(src):
    return [src.start_offset, src.end_offset, src.first_audio, src.laal, src.yaal]


def field_rows(stdout):
    """The field table's rows of ``s3tvr report``: metric -> [n, p50, mean, p90] as printed."""
    rows = {}
    for line in stdout.splitlines():
        if line[:7].strip() and line[7:20].strip() in ("StartOffset", "EndOffset", "first audio", "LAAL", "YAAL"):
            rows[line[7:20].strip()] = line[20:].split()
    return rows


def check(row, n, p50, mean, p90):
    """A printed row against its values: two decimals."""
    assert int(row[0]) == n and [float(x) for x in row[1:]] == pytest.approx([p50, mean, p90], abs=0.0051), row


def test_sentence_mode_by_hand(tmp_path):
    recs = sentence_log()
    assert recs[0].source_id == 0 and recs[1].source_id == 1 and recs[0].last_clause is True
    assert recs[0].played == ((102.5, 1.0), (103.5, 1.0)) and recs[0].latency_s == 0.5
    assert word_delays(recs[0]) == pytest.approx([103.0, 103.5, 104.0, 104.5])
    a, b = source_latencies(recs)
    assert metrics(a) == pytest.approx([2.5, 2.5, 0.5, 3.0, 3.0])
    assert metrics(b) == pytest.approx([4.8, 2.3, 0.8, 5.55, 4.925])
    fm = summarize(recs)[0].field_metrics
    assert fm["StartOffset"] == pytest.approx({"n": 2, "p50": 3.65, "mean": 3.65, "p90": 2.5 + 0.9 * 2.3})
    assert fm["EndOffset"] == pytest.approx({"n": 2, "p50": 2.4, "mean": 2.4, "p90": 2.48})
    assert fm["first audio"]["mean"] == pytest.approx(0.65)  # = today's latency_s
    assert fm["LAAL"]["mean"] == pytest.approx(4.275) and fm["YAAL"]["mean"] == pytest.approx(3.9625)

    log = tmp_path / "l.jsonl"
    log.write_text("".join(json.dumps(r.to_json()) + "\n" for r in recs))
    proc = s3tvr("report", log)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("es-en")).split()
    assert row[1:] == ["2", "2", "0", "0.65", "0.50", "0.80", "0.65", "0.77"]  # today's table, first
    rows = field_rows(proc.stdout)
    check(rows["StartOffset"], 2, 3.65, 3.65, 4.57)
    check(rows["EndOffset"], 2, 2.4, 2.4, 2.48)
    check(rows["first audio"], 2, 0.65, 0.65, 0.77)
    check(rows["LAAL"], 2, 4.275, 4.275, 3.0 + 0.9 * 2.55)
    check(rows["YAAL"], 2, 3.9625, 3.9625, 3.0 + 0.9 * 1.925)
    assert "OmniSTEval 0.1.10" in proc.stdout


def test_simultaneous_mode_groups_clauses_by_source_by_hand(tmp_path):
    recs = clause_log()
    assert [r.source_id for r in recs] == [0, 0, 0, 1, 1] and [r.last_clause for r in recs] == [False, False, True] + [False, True]
    assert word_delays(recs[1]) == [205.5]  # one word, heard whole at the end of the second chunk
    s0, s1 = source_latencies(recs)
    assert (s0.utterances, s0.words, s0.source_s) == (3, 5, 6.0)
    assert metrics(s0) == pytest.approx([3.0, 1.5, 0.5, 3.2, 3.1])
    assert (s1.utterances, s1.words) == (2, 1)
    assert metrics(s1) == pytest.approx([2.6, 0.4, -0.4, 3.4, 3.4])
    log = tmp_path / "l.jsonl"
    log.write_text("".join(json.dumps(r.to_json()) + "\n" for r in recs))
    proc = s3tvr("report", log)
    assert proc.returncode == 0, proc.stderr
    rows = field_rows(proc.stdout)
    check(rows["StartOffset"], 2, 2.8, 2.8, 2.96)
    check(rows["EndOffset"], 2, 0.95, 0.95, 1.39)
    check(rows["first audio"], 2, 0.05, 0.05, 0.41)
    check(rows["LAAL"], 2, 3.3, 3.3, 3.38)
    check(rows["YAAL"], 2, 3.25, 3.25, 3.37)


def test_the_adapter_agrees_with_omnistevals_own_evaluation():
    # The per-source figures above come from OmniSTEval's scorers; its whole evaluation, given
    # the same instances (a reference as long as the words heard, so |Y| is the same), averages
    # them into the system's long-form LAAL and YAAL.
    from omnisteval.data import Instance
    from omnisteval.scoring import YAALScorer, evaluate_instances

    sources = [([3.5, 4.0, 5.5, 7.0, 7.5], 6.0), ([3.4], 3.0)]
    ours = [omnisteval_lags(d, x) for d, x in sources]
    assert ours == [pytest.approx((3.2, 3.1)), pytest.approx((3.4, 3.4))]
    instances = [Instance(reference=" ".join("x" * len(d)), source_length=x * 1000, emission_cu=[v * 1000 for v in d])
                 for d, x in sources]
    scores, _, _ = evaluate_instances(instances, compute_quality=False, is_longform=True)
    assert scores["long_laal"] / 1000 == pytest.approx((3.2 + 3.4) / 2)
    assert scores["long_yaal"] / 1000 == pytest.approx((3.1 + 3.4) / 2)
    # Short-form YAAL would stop before the first word heard after the source ended:
    # (3.5 + 2.8 + 3.1) / 3, and drop the second source, all of whose words came after it.
    short = YAALScorer(is_longform=False)
    assert short.compute(instances[0]) / 1000 == pytest.approx(9.4 / 3) and short.compute(instances[1]) is None


def test_an_old_log_without_the_new_fields_still_reports(tmp_path):
    # As logged before simultaneous mode: no source_id, last_clause, t_speech_start or played.
    # Each record is its own source; what needs the start of speech is n/a.
    old = []
    for i, lat in enumerate([1.0, 2.0, 3.0, 4.0]):
        old.append({"utt_id": i, "src_lang": "es", "tgt_lang": "en", "latency_s": lat, "t_speech_end": 10.0 * i,
                    "t_vad_emit": 10.0 * i + 0.5, "error": None, "tgt_text": "some words", "stages": {}})
    # One with its play times: EndOffset (t_play_end - t_speech_end) is known, 4.0 - 1.0 = 3.0.
    old.append({"utt_id": 4, "src_lang": "es", "tgt_lang": "en", "latency_s": 0.5, "t_speech_end": 1.0, "t_vad_emit": 1.4,
                "t_first_audio": 1.5, "t_play_end": 4.0, "error": None, "stages": {}, "t0_mono": 0.0, "t0_unix": 1.0})
    log = tmp_path / "l.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in old))
    proc = s3tvr("report", log)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("es-en")).split()
    assert row[1:] == ["5", "5", "0", "2.10", "0.50", "4.00", "2.00", "3.60"]
    rows = field_rows(proc.stdout)
    check(rows["first audio"], 5, 2.0, 2.1, 3.6)  # latency_s, per utterance
    check(rows["EndOffset"], 1, 3.0, 3.0, 3.0)
    for name in ("StartOffset", "LAAL", "YAAL"):
        assert rows[name] == ["0", "n/a", "n/a", "n/a"]


def test_words_of_a_language_written_without_spaces_are_its_characters():
    rec = UtteranceRecord.from_json({"utt_id": 0, "src_lang": "en", "tgt_lang": "zh", "tgt_text": "你好 世界", "played": [[10.0, 2.0]]})
    assert word_delays(rec) == pytest.approx([10.5, 11.0, 11.5, 12.0])


class _Timeline(Source):
    timeline = True  # a file replayed: the translation is placed on its timeline


def test_file_sink_stamps_what_a_listener_hears_and_places_clauses_there(tmp_path):
    sink = FileSink(tmp_path / "o.wav", sample_rate=16000, source=_Timeline())
    sink.open()
    now = time.monotonic()
    # The input began playing 10 s ago: this clause's speech ended 9 s into it, 1 s ago.
    a = UttInfo(0, "en", "es", 7.0, 9.0, t_speech_end=now - 1.0, t_vad_emit=now, source_id=0, last_clause=False)
    b = UttInfo(1, "en", "es", 9.2, 9.9, t_speech_end=now - 0.1, t_vad_emit=now, source_id=0)
    sink.write(AudioChunk(a, np.full(8000, 0.5, np.float32), 16000))
    written = time.monotonic()
    sink.write(AudioChunk(a, np.full(8000, 0.5, np.float32), 16000))  # written at once: plays after the first
    sink.end(a)
    sink.write(AudioChunk(b, np.full(4000, 0.25, np.float32), 16000))  # after both of a's chunks
    sink.end(b)
    sink.close()
    (p0, s0), (p1, s1) = a.played
    assert now <= p0 <= written and (s0, s1) == (0.5, 0.5) and p1 == pytest.approx(p0 + 0.5)
    assert b.played == [(pytest.approx(p0 + 1.0), 0.25)]
    assert (a.t_first_audio, a.t_play_end, b.t_first_audio) == (p0, pytest.approx(p0 + 1.0), b.played[0][0])
    assert [u.utt_id for u in sink.finished()] == [0, 1]
    audio, _ = sf.read(tmp_path / "o.wav", dtype="float32")
    at = int(round((p0 - (now - 10.0)) * 16000))  # where the first chunk played, on the input's timeline
    assert np.all(audio[:at] == 0) and np.allclose(audio[at:at + 16000], 0.5, atol=1e-4)
    assert np.allclose(audio[at + 16000:], 0.25, atol=1e-4) and len(audio) == at + 20000

    # Sentence mode: the file keeps the utterance where it was spoken; the stamps say when it is heard.
    sink = FileSink(tmp_path / "s.wav", sample_rate=16000, source=_Timeline())
    sink.open()
    u = UttInfo(0, "en", "es", 2.0, 3.0, t_speech_end=time.monotonic(), t_vad_emit=0)
    sink.write(AudioChunk(u, np.full(1600, 0.5, np.float32), 16000))
    sink.end(u)
    sink.close()
    audio, _ = sf.read(tmp_path / "s.wav", dtype="float32")
    assert np.flatnonzero(audio)[0] == 32000 and u.played == [(u.t_first_audio, 0.1)] and u.t_first_audio >= u.t_speech_end


def test_speaker_sink_stamps_each_chunk_as_it_leaves_the_speaker():
    sink = SpeakerSink(jitter_ms=0)
    sink.rate, sink._resampler = 16000, Resampler(16000)
    utt = UttInfo(0, "en", "es", 0, 1, 0, 0)
    sink.write(AudioChunk(utt, np.full(1600, 0.1, np.float32), 16000))
    sink.write(AudioChunk(utt, np.full(800, 0.1, np.float32), 16000))
    sink.end(utt)
    out = np.zeros((800, 1), np.float32)
    for _ in range(4):  # the device asks for 50 ms at a time; the last call plays the end marker
        sink._callback(out, 800, None, None)
    assert [u.utt_id for u in sink.finished()] == [0]
    (p0, s0), (p1, s1) = utt.played
    assert (s0, s1) == (0.1, 0.05) and p1 > p0 and utt.t_first_audio == p0 and utt.t_play_end == pytest.approx(p1 + 0.05)


def envelope(audio, rate):
    """Where the fake TTS's tone sounds: its level over 10 ms above a quarter of its 0.3 peak."""
    n = int(rate / 100)
    return np.convolve(np.abs(audio), np.ones(n) / n, mode="same") > 0.3 * 2 / np.pi / 4


def run_fake(data, tmp_path, *extra):
    out, log = tmp_path / "o.wav", tmp_path / "l.jsonl"
    proc = s3tvr("run", "en", "--config", "fake", "--input", data / "fleurs-en-004.ogg", "--output", out, "--log", log, *extra)
    assert proc.returncode == 0, proc.stderr
    recs = read_log(log)
    audio, rate = sf.read(out, dtype="float32")
    return recs, audio, rate, log


@pytest.mark.slow
def test_a_real_run_logs_played_chunks_that_match_its_output(data, tmp_path):
    recs, audio, rate, log = run_fake(data, tmp_path)
    [rec] = recs  # the clip is one sentence
    played = rec.played
    t_input = rec.t_speech_end - rec.seg_end_s  # the wall clock when the input began (real-time pace)
    assert played and played[0][0] == pytest.approx(rec.t_first_audio, abs=1e-4)
    assert played[-1][0] + played[-1][1] == pytest.approx(rec.t_play_end, abs=1e-3)
    assert all(b[0] >= a[0] + a[1] - 1e-3 for a, b in zip(played, played[1:]))  # one after another
    heard = sum(sec for _, sec in played)
    assert heard == pytest.approx(rec.out_dur_s, abs=0.02)
    # Heard once the speech ended and the pipeline answered: seg_end_s + latency_s into the input.
    assert played[0][0] - t_input == pytest.approx(rec.seg_end_s + rec.latency_s, abs=1e-3)
    assert rec.t_speech_start - t_input < rec.seg_end_s and rec.source_id == 0 and rec.last_clause
    # Sentence mode keeps the file on the input's timeline: the tone sits where the sentence was
    # spoken, as long as what was heard.
    tone = np.flatnonzero(envelope(audio, rate)) / rate
    assert tone[0] == pytest.approx(rec.seg_start_s, abs=0.02) and tone[-1] - tone[0] == pytest.approx(heard, abs=0.03)

    proc = s3tvr("report", log)
    assert proc.returncode == 0, proc.stderr
    rows = field_rows(proc.stdout)
    assert rows["StartOffset"][0] == "1" and float(rows["StartOffset"][1]) == pytest.approx(
        played[0][0] - rec.t_speech_start, abs=0.01)
    assert float(rows["first audio"][1]) == pytest.approx(rec.latency_s, abs=0.01)
    assert all(rows[m][0] == "1" and not math.isnan(float(rows[m][1])) for m in ("EndOffset", "LAAL", "YAAL"))


@pytest.mark.slow
def test_a_simultaneous_run_writes_each_clause_where_it_was_heard(data, tmp_path):
    recs, audio, rate, log = run_fake(data, tmp_path, "--set", "simultaneous.mode=simultaneous")
    assert len(recs) >= 2 and {r.source_id for r in recs} == {0} and recs[-1].last_clause
    # The sink's estimate of when the input began, as the file was written with it.
    t_input = min(r.t_speech_end - r.seg_end_s for r in recs)
    expected = np.zeros(len(audio), bool)
    for r in recs:
        for start, sec in r.played:
            expected[int(round((start - t_input) * rate)):int(round((start - t_input + sec) * rate))] = True
    assert expected.any() and np.mean(envelope(audio, rate) == expected) > 0.99
    first = min(start for r in recs for start, _ in r.played) - t_input
    assert np.flatnonzero(envelope(audio, rate))[0] / rate == pytest.approx(first, abs=0.02)
    proc = s3tvr("report", log)
    assert proc.returncode == 0, proc.stderr
    assert all(field_rows(proc.stdout)[m][0] == "1" for m in ("StartOffset", "EndOffset", "first audio", "LAAL", "YAAL"))


def staged(utt_id, t_end, stages, played, text="a b", source_id=0, last=True):
    """A record whose stages started and ended (start, end, first output) at these offsets from ``t_end``."""
    utt = UttInfo(utt_id, "es", "en", seg_start_s=0.0, seg_end_s=t_end - 90.0, t_speech_end=t_end, t_vad_emit=t_end,
                  source_id=source_id, last_clause=last, t_speech_start=t_end - 4.0)
    utt.stages = {name: StageTiming(t_end + a, t_end + b, None if c is None else t_end + c, "x")
                  for name, (a, b, c) in stages.items()}
    utt.played, utt.tgt_text = [(t_end + at, sec) for at, sec in played], text
    return UtteranceRecord.from_json(json.loads(json.dumps(UtteranceRecord.from_utt(utt, CLOCK).to_json())))


def test_end_offset_is_broken_into_parts_that_add_up_to_it(tmp_path):
    # One utterance: recognition 0.5-1.0 s after the speech ends, translation's first piece at 1.3,
    # speech's first chunk at 1.5, heard from 1.8 for 2 s.
    rec = staged(0, 100.0, {"asr": (0.5, 1.0, 1.0), "mt": (1.0, 1.6, 1.3), "tts": (1.3, 2.0, 1.5)}, [(1.8, 2.0)])
    (src,) = source_latencies([rec])
    assert src.end_parts == pytest.approx({"endpoint": 0.5, "final pass": 0.5, "mt": 0.3, "tts": 0.2, "queued": 0.3,
                                           "spoken": 2.0})
    assert sum(src.end_parts.values()) == pytest.approx(src.end_offset) == pytest.approx(3.8)
    # Simultaneous: the last spoken clause was translated and started playing before the speaker
    # stopped; an empty last clause closes the source. Work done before the end costs nothing.
    early = staged(1, 200.0, {"asr": (-3.0, -2.8, -2.8), "mt": (-2.8, -2.5, -2.5), "tts": (-2.5, -2.0, -2.2)},
                   [(-1.0, 2.5)], source_id=1, last=False)
    end = staged(2, 200.0, {"asr": (0.5, 0.7, 0.7)}, [], text="", source_id=1)
    (src,) = source_latencies([early, end])
    assert src.end_parts == pytest.approx({"endpoint": 0.5, "final pass": 0.2, "mt": 0.0, "tts": 0.0, "queued": 0.0,
                                           "spoken": 0.8})
    assert sum(src.end_parts.values()) == pytest.approx(src.end_offset) == pytest.approx(1.5)
    parts = summarize([rec, early, end])[0].end_parts
    assert parts["spoken"] == pytest.approx({"n": 2, "p50": 1.4, "mean": 1.4})
    assert parts["endpoint"]["mean"] == pytest.approx(0.5)

    log = tmp_path / "l.jsonl"
    log.write_text("".join(json.dumps(r.to_json()) + "\n" for r in [rec, early, end]))
    proc = s3tvr("report", log, "--sources")
    assert proc.returncode == 0, proc.stderr
    assert "es-en  mean  endpoint 0.50  final pass 0.35  mt 0.15  tts 0.10  queued 0.15  spoken 1.40" in proc.stdout
    rows = [line.split() for line in proc.stdout.splitlines()[proc.stdout.splitlines().index("per source utterance (s)") + 2:]]
    assert [r[1] for r in rows] == ["0", "1"] and rows[0][-6:] == ["0.50", "0.50", "0.30", "0.20", "0.30", "2.00"]
