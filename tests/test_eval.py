"""s3tvr eval: metric code against values computed by hand, and the command end to end."""

import dataclasses
import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from s3tvr.eval import metrics
from s3tvr.latency.record import UtteranceRecord

from conftest import manifest, s3tvr_cmd


def test_wer_by_hand():
    # "sat"->"sit" is a substitution, "the" before "mat" a deletion: 2 errors over 6 reference words.
    assert metrics.wer(["the cat sat on the mat"], ["The cat sit on mat."]) == pytest.approx(2 / 6)
    assert metrics.wer(["a b c"], [""]) == 1.0  # nothing recognised: every word deleted
    assert metrics.wer(["a b", "c d e"], ["a b", ""]) == pytest.approx(3 / 5)  # corpus: errors over all words
    assert metrics.wer([""], [""]) is None  # no speech, nothing to score
    assert metrics.wer(["", "a b"], ["noise words", "a b"]) == 0.0  # a clip without reference words is skipped


def test_bleu_and_chrf_by_hand():
    # 1- to 4-gram precisions 6/7, 5/6, 4/5, 3/4, no brevity penalty: BLEU = (3/7) ** (1/4).
    assert metrics.sentence_bleu("the cat sat on the mat today", "the cat sat on the mat now") == pytest.approx(
        100 * (3 / 7) ** 0.25, abs=0.01)
    same = metrics.bleu_chrf(["a quick brown fox jumps"], ["a quick brown fox jumps"])
    assert same["bleu"] == pytest.approx(100) and same["chrf"] == pytest.approx(100)
    empty = metrics.bleu_chrf([""], ["a quick brown fox jumps"])
    assert empty["bleu"] == 0 and empty["chrf"] == 0
    assert same["bleu_signature"].startswith("nrefs:1|") and "nc:6" in same["chrf_signature"]


def test_cosine_by_hand():
    assert metrics.cosine([1, 0], [0, 1]) == 0
    assert metrics.cosine([1, 2], [2, 4]) == pytest.approx(1)
    assert metrics.cosine([1, 0], [1, 1]) == pytest.approx(1 / math.sqrt(2))
    assert metrics.cosine([0, 0], [1, 1]) == 0  # silence embeds to nothing


def test_latency_figures_by_hand():
    def rec(lat, asr=1.0, tts_first=0.5, seg=(0.0, 3.0)):
        return UtteranceRecord.from_json({
            "utt_id": 0, "src_lang": "es", "tgt_lang": "en", "latency_s": lat, "seg_start_s": seg[0], "seg_end_s": seg[1],
            "stages": {"asr": {"start": 10.0, "end": 10.0 + asr, "first_out": 10.0 + asr},
                       "tts": {"start": 11.0, "end": 13.0, "first_out": 11.0 + tts_first}}})

    records = [rec(1.0), rec(2.0), rec(3.0), rec(4.0), dataclasses.replace(rec(None), stages={})]
    fig = metrics.latency_figures(records, endpoint_s=0.5, long_endpoint_s=0.2, long_after_s=8.0, audio_s=20.0)
    assert (fig["utterances"], fig["spoken"]) == (5, 4)
    assert (fig["p50_s"], fig["mean_s"], fig["max_s"]) == (2.5, 2.5, 4.0)
    assert fig["p90_s"] == pytest.approx(3.7)
    assert fig["stage_mean_s"] == {"asr": 1.0, "tts": 0.5}
    assert fig["rtf"] == pytest.approx(4 * (1.0 + 2.0) / 20.0)  # whole stage time over audio time
    # latency 2.0 over (endpoint 0.5 + asr 1.0 + tts to first chunk 0.5) = 1.0
    assert fig["overhead_p50"] == pytest.approx(1.25)  # ratios 0.5, 1, 1.5, 2
    long = metrics.latency_figures([rec(1.7, seg=(0.0, 9.0))], 0.5, 0.2, 8.0, 9.0)
    assert long["overhead_p50"] == pytest.approx(1.7 / (0.2 + 1.5))  # a long utterance ends on the short endpoint
    none = metrics.latency_figures([], 0.5, 0.2, 8.0, 0.0)
    assert none["spoken"] == 0 and math.isnan(none["p50_s"])


def clip_folder(data, tmp_path, clips):
    """A folder in eval's format: the clips and their manifest lines."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for clip in clips:
        shutil.copy(data / clip, folder / clip)
    (folder / "manifest.jsonl").write_text("".join(json.dumps(manifest()[clip]) + "\n" for clip in clips))
    return folder


@pytest.mark.slow
def test_eval_end_to_end_on_two_clips_and_a_silent_one(data, tmp_path):
    folder = clip_folder(data, tmp_path, ("fleurs-es-002.ogg", "fleurs-es-004.ogg"))
    sf.write(folder / "silence.wav", np.zeros(16000 * 3, np.float32), 16000)  # no speech: nothing to translate
    silence = {"audio": "silence.wav", "lang": "es", "transcript_fleurs_normalized": "", "ref_eng": "Nothing was said."}
    with open(folder / "manifest.jsonl", "a") as f:
        f.write(json.dumps(silence) + "\n")
    out = tmp_path / "out"

    proc = subprocess.run([*s3tvr_cmd(), "eval", "--data", folder, "--pair", "es-en", "--fast", "--out", out],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # One engine for the three clips: every model loaded once, however many clips.
    for part in ("vad", "asr", "tts"):
        assert proc.stderr.count(f"loading {part}\n") == 1, proc.stderr
    for label in ("ASR-BLEU", "chrF", "source WER", "speaker sim.", "p50", "peak_rss_mb", "CPU seconds per second of speech"):
        assert label in proc.stdout
    result = json.loads((out / "eval.json").read_text())
    assert [c["audio"] for c in result["clips"]] == ["fleurs-es-002.ogg", "fleurs-es-004.ogg", "silence.wav"]
    silent = result["clips"][2]
    assert silent["heard"] == "" and silent["bleu"] == 0 and silent["speaker_similarity"] is None and silent["utterances"] == 0
    spoken = result["clips"][:2]
    assert all(c["heard"] and c["translation"] and 0 < c["speaker_similarity"] < 1 for c in spoken)
    # Measured on the two clips alone: ASR-BLEU 8.9, chrF 32.0; the silent clip lowers the corpus score.
    assert result["asr_bleu"]["bleu"] > 3 and result["asr_bleu"]["chrf"] > 25
    assert 0 <= result["source_wer"] < 0.3
    assert result["latency"]["cpu_s_per_audio_s"] > 0.05  # Whisper alone costs more than that per second heard
    assert result["latency"]["spoken"] == 2 and result["memory"]["peak_rss_mb"] > result["memory"]["asr_rss_mb"] > 0
    assert (out / "eval.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_input_errors_are_one_line(tmp_path):
    def err(*args):
        proc = subprocess.run([*s3tvr_cmd(), "eval", *map(str, args)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        return proc.stderr.strip().splitlines()[-1]

    assert "not found" in err("--data", tmp_path / "nope", "--pair", "es-en")
    assert "es-en" in err("--data", tmp_path, "--pair", "es")
    assert "no manifest.jsonl" in err("--data", tmp_path, "--pair", "es-en")
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"audio": "a.wav", "lang": "es", "ref_eng": "x"}) + "\n")
    assert "no clips in ru" in err("--data", tmp_path, "--pair", "ru-en")
    assert "ref_rus" in err("--data", tmp_path, "--pair", "es-ru")


@pytest.mark.slow
def test_eval_into_spanish_offline(data, tmp_path):
    """en -> es offline (Whisper transcribes, Apertium, Kokoro), judged by Whisper base hearing Spanish."""
    folder = clip_folder(data, tmp_path, ("fleurs-en-003.ogg", "fleurs-en-004.ogg"))
    out = tmp_path / "out"
    proc = subprocess.run([*s3tvr_cmd(), "eval", "--data", folder, "--pair", "en-es", "--fast", "--out", out],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "eval.json").read_text())
    assert all(c["heard"] and c["translation"] for c in result["clips"])
    # Measured on these two clips: ASR-chrF 46.0 against the FLORES Spanish (text chrF 47.4); an unrelated
    # sentence scores about 17 (tests/test_offline_directions.py).
    assert result["asr_bleu"]["chrf"] > 30 and result["text_bleu"]["chrf"] > 30, result["asr_bleu"]
