"""Writing files whole or not at all: a temporary name beside the target, renamed at the end, so
an interrupted run never leaves a half-written file under the name a user expects."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf


def file_key(path: Path) -> str:
    """Identifies a file without reading it (a checkpoint has gigabytes): path, size, modification time."""
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()


def safe_name(name: str) -> str:
    """``name`` usable in a file name on any system: runs of other characters become "_"."""
    return re.sub(r"[^\w.-]+", "_", name)


def _temp(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def write_text(path: Path, text: str) -> None:
    tmp = _temp(path)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=1, ensure_ascii=False, default=lambda x: None) + "\n")


def write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    tmp = _temp(path)
    sf.write(tmp, audio, rate, format="WAV")
    tmp.replace(path)
