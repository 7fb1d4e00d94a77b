import os
import shutil
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent
SHARED = REPO.parent / "shared" / "data"


def manifest() -> dict:
    import json

    return {json.loads(line)["audio"]: json.loads(line) for line in (DATA / "fleurs_manifest.jsonl").read_text().splitlines()}


@pytest.fixture(scope="session")
def data() -> Path:
    return DATA


@pytest.fixture(autouse=True)
def _model_cache(tmp_path_factory, monkeypatch):
    # The joined Whisper base model is cached once per test session, never in the user's home.
    monkeypatch.setenv("S3TVR_CACHE", str(tmp_path_factory.getbasetemp() / "s3tvr-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # tests never download


def s3tvr_cmd() -> list[str]:
    exe = shutil.which("s3tvr", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "s3tvr"]
