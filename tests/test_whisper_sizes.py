"""Larger Whispers: ``s3tvr download whisper-small | whisper-large-v3-turbo`` fetches pinned files and
refuses others, and ``asr.model=auto`` takes the largest installed one whose pass keeps pace, or a
smaller one, and says which and why. The "downloaded" Whisper here is a tiny one of small's real
architecture (random weights, converted as the benchmarks convert the full-size ones); no hub is reached."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import shutil

import pytest

from s3tvr.errors import SetupError
from s3tvr.weights import downloaded

pytest.importorskip("faster_whisper")
TINY = dict(d_model=64, encoder_attention_heads=2, decoder_attention_heads=2, encoder_layers=2, decoder_layers=2,
            encoder_ffn_dim=128, decoder_ffn_dim=128)
WHISPERS = ("whisper-small", "whisper-large-v3-turbo")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A models folder where a Whisper "small" was downloaded: a tiny random one of small's architecture."""
    import stack_models

    work, models = tmp_path_factory.mktemp("build"), tmp_path_factory.mktemp("models")
    built = stack_models.build_whisper("small", work, **TINY)
    shutil.move(built, models / downloaded.REPOS["whisper-small"].folder)
    return models


def auto(bound_s: float, caplog):
    from s3tvr.backends.asr import faster_whisper as fw

    asr = fw.Backend(fw.Config(model="auto", auto_max_pass_s=bound_s, cpu_threads=2), "es", "en")
    with caplog.at_level(logging.INFO, logger=fw.__name__):
        asr.setup()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("asr.model=auto")]
    caplog.clear()
    assert len(said) == 1, said  # said once
    return asr, said[0]


def test_a_whisper_that_cannot_keep_pace_leaves_auto_to_a_smaller_one_and_it_says_so(models, monkeypatch, caplog):
    monkeypatch.setenv("S3TVR_MODELS", str(models))
    # No pass takes 0 s: small cannot keep this pace on any machine, and bundled base is taken untimed.
    asr, said = auto(0, caplog)
    assert asr.model_name == "base" and asr.model is not None and asr.calibrated_pass_s is None
    assert re.fullmatch(r"asr\.model=auto: Whisper base \(small: a pass over 10 s of speech takes \d+\.\d\d s here, "
                        r"more than asr\.auto_max_pass_s \(0 s\)\)", said), said
    # A pace no tiny model misses on any machine: small is taken, timed as mode auto times it (reused there).
    asr, said = auto(60, caplog)
    assert asr.model_name == "small" and asr.calibrated_pass_s > 0
    assert "Whisper small (a pass over 10 s of speech takes" in said and "within asr.auto_max_pass_s (60 s)" in said
    asr.hypothesis(asr_audio(), "", "es")  # the chosen model serves passes


def test_with_nothing_downloaded_auto_is_bundled_base_untimed_and_says_how_to_get_more(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("S3TVR_MODELS", str(tmp_path))
    asr, said = auto(60, caplog)
    assert asr.model_name == "base" and asr.calibrated_pass_s is None
    assert "the only one installed: s3tvr download whisper-small or whisper-large-v3-turbo" in said


def test_a_downloaded_whisper_is_found_by_its_faster_whisper_name(models, monkeypatch):
    from s3tvr.backends.asr.faster_whisper import load_model

    monkeypatch.setenv("S3TVR_MODELS", str(models))
    assert load_model("small", local_files_only=True).model.is_multilingual  # offline: only the downloaded copy loads


def asr_audio():
    from s3tvr.audio import SAMPLE_RATE
    from s3tvr.audio.decode import load_audio
    from s3tvr.backends.asr import CALIBRATION_CLIP

    return load_audio(CALIBRATION_CLIP, SAMPLE_RATE)[: 3 * SAMPLE_RATE]


@pytest.mark.parametrize("key", WHISPERS)
def test_larger_whispers_are_pinned_and_another_file_is_refused_and_removed(key, tmp_path, monkeypatch):
    monkeypatch.setenv("S3TVR_MODELS", str(tmp_path))
    repo = downloaded.REPOS[key]
    assert re.fullmatch(r"[0-9a-f]{40}", repo.revision) and re.fullmatch(r"[0-9a-f]{64}", repo.sha256)
    assert repo.patterns[0] == "model.bin"  # the file the hash is of
    folder = tmp_path / repo.folder
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"not the pinned weights")
    with pytest.raises(SetupError, match=f"{repo.repo_id}/model.bin at commit {repo.revision[:7]} is not the file pinned"):
        downloaded._check_hash(repo, folder)
    assert not (folder / "model.bin").exists() and downloaded.installed(key) is None  # auto will not take it
    # The same bytes pinned are kept: the check compares, it does not refuse everything.
    (folder / "model.bin").write_bytes(b"pinned weights")
    downloaded._check_hash(dataclasses.replace(repo, sha256=hashlib.sha256(b"pinned weights").hexdigest()), folder)
    assert downloaded.installed(key) == folder


def test_mode_auto_takes_the_pass_that_asr_auto_timed_rather_than_timing_it_again(models, monkeypatch, caplog):
    from s3tvr import Engine, load_config

    monkeypatch.setenv("S3TVR_MODELS", str(models))
    cfg = load_config("offline", ["simultaneous.mode=auto", "asr.auto_max_pass_s=60", "asr.cpu_threads=2"],
                      src_lang="es", tgt_lang="en")
    with caplog.at_level(logging.INFO, logger="s3tvr"), Engine(cfg, kinds=("asr",)) as engine:
        engine.setup()
        assert engine.asr.model_name == "small"
        # The same float, not a second measurement (two timings never agree to the last bit).
        assert engine.pass_s == engine.asr.calibrated_pass_s
        assert any(r.getMessage().startswith(f"mode auto: simultaneous (a recognition pass over 10 s of speech takes "
                                             f"{engine.pass_s:.2f} s") for r in caplog.records)
