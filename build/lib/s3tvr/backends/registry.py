"""Backend registry: a name maps to a lazily imported module and the pip extra it needs.

Each backend module defines ``Config`` (a dataclass of its options) and ``Backend`` (a
:class:`~s3tvr.pipeline.Stage`). Importing it pulls in its libraries, so that happens only for
the backends a run uses; a missing library becomes an install hint naming the extra.
Adding a backend is one module plus one line here; the CLI's choices come from this table.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from s3tvr.config import BackendSection, coerce
from s3tvr.errors import InputError, SetupError


@dataclass(frozen=True)
class BackendInfo:
    kind: str  # asr | mt | tts
    name: str
    module: str
    extra: str  # pip extra of the s3tvr package that installs its libraries
    summary: str


BACKENDS: list[BackendInfo] = [
    BackendInfo("asr", "faster-whisper", "s3tvr.backends.asr.faster_whisper", "whisper",
                "Whisper on CTranslate2; its translate task speaks any language into English"),
    BackendInfo("asr", "fake", "s3tvr.backends.fake", "", "scripted text after a scripted delay (tests, soak)"),
    BackendInfo("mt", "none", "", "", "no MT stage: the ASR already gives the target language"),
    BackendInfo("mt", "fake", "s3tvr.backends.fake", "", "scripted translation after a scripted delay"),
    BackendInfo("tts", "piper", "s3tvr.backends.tts.piper", "piper", "Piper: a fast CPU voice, no cloning"),
    BackendInfo("tts", "fake", "s3tvr.backends.fake", "", "a tone per word after a scripted delay"),
]


def names(kind: str) -> list[str]:
    return [b.name for b in BACKENDS if b.kind == kind]


def info(kind: str, name: str) -> BackendInfo:
    for b in BACKENDS:
        if b.kind == kind and b.name == name:
            return b
    raise InputError(f"unknown {kind} backend {name!r}: choose one of {', '.join(names(kind))}")


def _import(b: BackendInfo) -> ModuleType:
    try:
        return importlib.import_module(b.module)
    except ImportError as exc:
        hint = f"pip install 's3tvr[{b.extra}]'" if b.extra else "reinstall s3tvr"
        raise SetupError(f"{b.kind} backend {b.name} needs {exc.name or 'a library'} which is not installed: {hint}") from None


def create(kind: str, section: BackendSection, **context: Any) -> Any:
    """Build the stage for ``section`` (not set up yet: models load in ``setup()``); None for "none"."""
    b = info(kind, section.backend)
    if not b.module:
        if section.options:
            raise InputError(f"{kind} backend {b.name} takes no options")
        return None
    module = _import(b)
    config_cls = module.CONFIGS[kind] if hasattr(module, "CONFIGS") else module.Config
    known = {f.name for f in dataclasses.fields(config_cls)}
    for key in section.options:
        if key not in known:
            raise InputError(f"unknown option {kind}.{key} for backend {b.name}: known are {', '.join(sorted(known)) or 'none'}")
    config = coerce(config_cls, section.options, kind)
    backend_cls = module.BACKENDS[kind] if hasattr(module, "BACKENDS") else module.Backend
    return backend_cls(config, **context)


def describe() -> str:
    """A table of backends for --help."""
    lines = []
    for b in BACKENDS:
        extra = f" [extra: {b.extra}]" if b.extra else ""
        lines.append(f"  {b.kind:<4} {b.name:<15} {b.summary}{extra}")
    return "\n".join(lines)
