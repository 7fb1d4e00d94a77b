"""Configuration: one dataclass per section, YAML presets in s3tvr/configs/, dotted overrides.

A preset is a YAML file with the sections below; ``key.sub=value`` overrides any key. The
``asr``, ``mt`` and ``tts`` sections name a backend; their other keys belong to that backend's
own config dataclass (see :mod:`s3tvr.backends.registry`) and are checked when the run starts.

A preset may also hold an ``into:`` table: per target language, the sections that change when
translating into it (the offline preset speaks Spanish with another voice); under a language's
``dub:`` key, what changes again for dubbing, which is not live and may use a slower, better
voice. Overrides apply after it: :func:`load_config` is the one place all of it is assembled,
the command line's flags included (as overrides after ``--set``: a flag wins).

The comment beside each field (or right above it) is its description: ``s3tvr config`` prints
it and docs/configuration.md is made from it (:mod:`s3tvr.cli.config_docs`), so every field has one.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional, Sequence, Union

import yaml

from s3tvr import bounds
from s3tvr.bounds import Range, unoptional
from s3tvr.errors import InputError


@dataclass(frozen=True)
class AudioConfig:
    # index or name substring (s3tvr devices); "pulse:NAME": a PulseAudio/PipeWire source by name, the
    # monitor of an output included ("pulse:SINK.monitor": what that output plays); None: the system default
    input_device: Optional[str] = None
    output_device: Optional[str] = None  # the speaker: index or name substring; None: the system default
    full_duplex: bool = False  # True with headphones: the mic stays open while translations play
    echo_tail_ms: Annotated[int, Range(0, 5000)] = 300  # half-duplex: the mic stays closed this long after playback
    # Full duplex from a microphone to a speaker: an utterance that is mostly what the speaker just played (the
    # share of its power coherent with it, s3tvr/audio/echo.py) is not translated, but logged as skipped.
    echo_guard: bool = True
    # The share above which an utterance is echo. On benchmarks/bench_echo.py's looped-back real speech, echoes
    # scored 0.72 or more at -6 and -20 dB, and people 0.24 or less, over the echo too (double talk): 0.5,
    # mostly our own output, rejected every echo and none of the people.
    echo_threshold: Annotated[float, Range(0, 1)] = 0.5
    echo_max_delay_ms: Annotated[int, Range(0, 5000)] = 500  # the longest from the speaker's stamp to the mic's (room, buffers)
    jitter_ms: Annotated[int, Range(0, 2000)] = 60  # speaker buffer before an utterance starts to play
    output_sample_rate: Annotated[int, Range(8000, 192000)] = 24000  # of a file output, and of what serve sends its clients
    realtime: bool = True  # replay file input at real-time pace (False: --fast)
    # In a call (PulseAudio or PipeWire): the translation goes into a virtual microphone of this name that
    # calls and recorders can pick (--virtual-mic), instead of the speaker; "": none
    virtual_mic: str = ""
    listen_to: str = ""  # translate this program's audio (its name, e.g. zoom, firefox) instead of the microphone
    # with listen_to, the original's level under the translation in dB (-90: silent), as dub's --duck-db
    duck_db: Annotated[float, Range(-90, 0)] = -15.0
    # Lag control (s3tvr/live/pacing.py): past this much translated audio not yet heard, speak faster
    # (up to max_rate at twice it) and cut the pauses around sentences to max_gap_s. At 1.25x the judge
    # Whisper still hears Piper as well (WER 12.0 % against 11.6 % at 1.0x, benchmarks/bench_tempo.py):
    # the voice may catch up from half a second behind.
    lag_s: Annotated[float, Range(0.25, 600)] = 0.5
    max_rate: Annotated[float, Range(1, 2)] = 1.25  # the dubbing cap: faster stops sounding natural
    max_gap_s: Annotated[float, Range(0, 2)] = 0.1  # once past lag_s, the longest pause kept around what is said


@dataclass(frozen=True)
class VadConfig:
    threshold: Annotated[float, Range(0, 1, above=True)] = 0.5  # speech probability that starts speech
    neg_threshold: Optional[Annotated[float, Range(0, 1)]] = None  # below this, speech has stopped (default threshold - 0.15)
    # Silence that ends an utterance: fewest split sentences, none merged (benchmarks/bench_vad.py).
    endpoint_ms: Annotated[int, Range(32, 10000)] = 500
    preroll_ms: Annotated[int, Range(0, 2000)] = 300  # audio kept before speech starts, so the first syllable is never clipped
    min_speech_ms: Annotated[int, Range(0, 5000)] = 250  # shorter bursts are dropped (coughs, clicks)
    long_after_s: Annotated[float, Range(0, above=True)] = 8.0  # once an utterance is this long, the shorter pause long_endpoint_ms ends it
    long_endpoint_ms: Annotated[int, Range(32, 10000)] = 200  # the pause that ends an utterance past long_after_s: at its next breath
    max_segment_s: Annotated[float, Range(1, 60)] = 15.0  # force a split at the quietest point for speakers who never pause
    tail_ms: Annotated[int, Range(0, 2000)] = 100  # silence kept after the last speech window
    onnx: bool = True  # ONNX runs 2x faster than TorchScript here (benchmarks/bench_vad.py)
    max_gain_db: Annotated[float, Range(0, 100)] = 60.0  # gain normalisation for quiet microphones and recordings
    # Smart Turn v3.2 (s3tvr/live/turn.py) instead of the fixed endpoint: after turn_silence_ms of silence it asks, once
    # per pause, whether the speaker has finished; yes ends the utterance, no waits up to turn_max_ms (long_endpoint_ms
    # still ends long utterances). Off: on bench_vad.py's 22 sentences it split more than the fixed endpoint at every
    # silence (300 ms: 4 split, wait p50 0.44 s; 200 ms: 10, 0.36 s; fixed 500 ms: 2, 0.51 s): read speech's clause
    # pauses sound finished to it.
    turn: bool = False
    turn_silence_ms: Annotated[int, Range(32, 2000)] = 300  # with turn: the silence after which the model is asked
    turn_threshold: Annotated[float, Range(0, 1)] = 0.5  # probability of a finished turn above which it ends
    turn_max_ms: Annotated[int, Range(32, 10000)] = 1000  # silence that ends an utterance the model called unfinished


@dataclass(frozen=True)
class DenoiseConfig:
    enabled: bool = False  # off: it raised word error on the shared noisy clips (docs/measurements.md)
    prop_decrease: Annotated[float, Range(0, 1)] = 0.8  # how much of the noise is taken out (noisereduce's; 1: all of it)
    profile_s: Annotated[float, Range(0, 60, above=True)] = 2.0  # how much recent non-speech audio forms the noise profile


@dataclass(frozen=True)
class SimultaneousConfig:
    """How an utterance is translated while it is being spoken (mode simultaneous)."""

    # sentence: each utterance once it has ended | simultaneous: clause by clause as it is spoken |
    # auto: simultaneous where this machine's passes keep pace, measured when the ASR loads
    # (simultaneous.auto_mode; docs/measurements.md: benchmarks/bench_simultaneous.sh), else sentence.
    mode: str = "auto"
    step_s: Annotated[float, Range(0.2, 5)] = 1.0  # re-read the utterance heard so far this often (when the ASR is free)
    min_audio_s: Annotated[float, Range(0.2, 10)] = 2.0  # the first look: shorter prefixes make Whisper guess (tests/test_agreement.py)
    trim_s: Annotated[float, Range(2, 30)] = 10.0  # longer buffers are cut at the last committed sentence end
    # Which words a pass commits: aligned (AlignAtt's rule: what Whisper aligns at least align_threshold_s
    # before the end heard, in one pass) | agreement (LocalAgreement-2: what two passes in a row agree on).
    # aligned ended sooner at the same source WER (benchmarks/bench_sooner.py, bench_commit.py; docs/measurements.md).
    policy: str = "aligned"
    align_threshold_s: Annotated[float, Range(0.1, 5)] = 0.5  # policy aligned: how far before the end a word must end
    clause_min_words: Annotated[int, Range(1, 20)] = 3  # a clause mark or a pause releases a clause this long
    clause_max_words: Annotated[int, Range(2, 50)] = 12  # released at this length when there is neither
    clause_pause_s: Annotated[float, Range(0.1, 2)] = 0.35  # a pause this long releases a clause of clause_min_words
    # Passes may take this share of the time (MT, TTS and the final pass need the rest): after a pass of
    # c seconds the next waits for max(step_s, c / pass_budget) of new speech (simultaneous.PassPacer).
    pass_budget: Annotated[float, Range(0.1, 1)] = 0.5
    # The longest wait between passes: past it, the rest of the utterance is recognised when it ends. Mode
    # auto chooses sentence where passes over 10 s of speech could not come this often (simultaneous.auto_mode).
    max_step_s: Annotated[float, Range(0.5, 30)] = 3.0
    # A pause this long (under vad.endpoint_ms) has the rest of the utterance recognised, translated and
    # spoken at once, the speech held until the endpoint confirms the pause and dropped if the speaker
    # goes on: the endpoint's wait hides the last clause's work (0: wait for the endpoint).
    tail_after_ms: Annotated[int, Range(0, 10000)] = 200


@dataclass(frozen=True)
class BackendSection:
    backend: str  # which backend (s3tvr/backends/registry.py). The section's other keys are its options.
    options: dict[str, Any] = field(default_factory=dict)  # the backend's own Config fields (unknown ones refused when it is built)


@dataclass(frozen=True)
class PipelineConfig:
    queue_size: Annotated[int, Range(1, 1000)] = 8  # utterances waiting between two stages before the earlier one waits too
    workers: dict[str, Annotated[int, Range(1, 64)]] = field(default_factory=dict)  # stage name -> worker threads


@dataclass(frozen=True)
class Config:
    src_lang: str = "es"  # the language spoken (ISO 639-1; run's LANG, --from); dub: auto detects it
    tgt_lang: str = "en"  # the language spoken to the listener (--to); it picks the preset's into: changes
    device: str = "cpu"  # where the models run: cpu | cuda (--device)
    dtype: str = "auto"  # torch backends: auto (bfloat16 on CUDA where native, else float16; float32 on CPU) | float32 | float16 | bfloat16
    audio: AudioConfig = field(default_factory=AudioConfig)  # devices, duplex, file pace and lag control
    vad: VadConfig = field(default_factory=VadConfig)  # where utterances start and end (Silero VAD; Smart Turn)
    denoise: DenoiseConfig = field(default_factory=DenoiseConfig)  # noise reduction before the ASR
    # How an utterance is translated while it is being spoken (--mode)
    simultaneous: SimultaneousConfig = field(default_factory=SimultaneousConfig)
    asr: BackendSection = field(default_factory=lambda: BackendSection("faster-whisper"))  # speech recognition: a backend and its options
    mt: BackendSection = field(default_factory=lambda: BackendSection("none"))  # translation: a backend and its options
    tts: BackendSection = field(default_factory=lambda: BackendSection("piper"))  # the voice: a backend and its options
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)  # the stages' queues and threads

    def context(self) -> dict[str, Any]:
        """What every backend is built with, beside its own section."""
        return {"src_lang": self.src_lang, "tgt_lang": self.tgt_lang, "device": self.device, "dtype": self.dtype}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {"audio": AudioConfig, "vad": VadConfig, "denoise": DenoiseConfig, "simultaneous": SimultaneousConfig,
             "pipeline": PipelineConfig}
_BACKENDS = ("asr", "mt", "tts")


def _presets() -> Any:
    # Package data read through importlib.resources, not a path from __file__: it works from a
    # wheel, a zip or an editable install alike (pyproject ships configs/*.yaml).
    return importlib.resources.files("s3tvr") / "configs"


def _read_source(source: str | Path) -> tuple[str, str]:
    """(label, text) of a YAML file path or, for a bare name, the packaged preset of that name."""
    path = Path(source)
    if path.is_file():
        return str(path), path.read_text(encoding="utf-8")
    if not path.suffix and path.name == str(source):  # a bare name like "stack", not a path
        preset = _presets() / f"{source}.yaml"
        if preset.is_file():
            return str(preset), preset.read_text(encoding="utf-8")
    names = ", ".join(sorted(p.name[: -len(".yaml")] for p in _presets().iterdir() if p.name.endswith(".yaml")))
    raise InputError(f"config {source} not found: give a YAML file or a preset name ({names})")


Override = Union[str, tuple[str, Any]]  # "key.sub=VALUE" (VALUE read as YAML) or (key, value) set as given


def load_config(source: str | Path | None = None, overrides: Sequence[Override] | None = None, purpose: str = "live",
                **top: Any) -> Config:
    """The one place a configuration is assembled, in this order, each step over the one before:

    1. the preset named ``source`` (or a YAML file);
    2. its ``into:`` changes for the target language and, when ``purpose`` is "dub", that
       language's ``dub:`` changes;
    3. ``overrides`` in their order: ``"key.sub=VALUE"`` strings (``--set``; VALUE read as YAML)
       or ``(key, value)`` pairs set as given (a command's flags: paths and device names keep
       their characters);
    4. ``top`` keys that are not None (``src_lang``, ``tgt_lang``, ``device``, ``dtype``), as
       ``(key, value)`` overrides after the others.

    A later step wins, so the command line puts its flags after ``--set``: ``--device cuda --set
    device=cpu`` runs on cuda. The target language that picks the ``into:`` changes is the last
    ``tgt_lang`` among the overrides and ``top``, else the file's, else English."""
    changes = [_override(item) for item in overrides or []]
    changes += [(key, value) for key, value in top.items() if value is not None]
    data: dict[str, Any] = {}
    if source is not None:
        label, text = _read_source(source)
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"config {label} is not valid YAML ({exc.__class__.__name__}): fix the file") from None
        if not isinstance(data, dict):
            raise InputError(f"config {label} must be a mapping of sections: fix the file")
        target = next((value for key, value in reversed(changes) if key == "tgt_lang"), None)
        data = _into_target(data, str(target or data.get("tgt_lang") or Config.tgt_lang), purpose, label)
    for key, value in changes:
        _set_dotted(data, key, value)
    return _build(data)


def _override(item: Override) -> tuple[str, Any]:
    """(key, value) of a ``key=VALUE`` string, its VALUE read as YAML; a pair as it is."""
    if isinstance(item, tuple):
        key, value = item
        return key.strip(), value
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise InputError(f"override {item!r} is not KEY=VALUE: write e.g. vad.endpoint_ms=300")
    try:
        return key.strip(), yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise InputError(f"override {item!r}: the value is not valid YAML: quote it, e.g. {key.strip()}='\"TEXT\"'") from None


def _into_target(data: dict[str, Any], tgt: str, purpose: str, label: str) -> dict[str, Any]:
    """``data`` without its ``into:`` table, changed as the table says for target ``tgt``."""
    data = dict(data)
    into = data.pop("into", None) or {}
    changes = into.get(tgt) if isinstance(into, dict) else None
    if not isinstance(into, dict) or not isinstance(changes or {}, dict):
        raise InputError(f"config {label}: into must map target languages to the sections they change: fix the file")
    changes = dict(changes or {})
    dub = changes.pop("dub", None) or {}
    for change in (changes, dub if purpose == "dub" else {}):
        for key, value in change.items():
            data[key] = _changed_section(data.get(key), value, key in _BACKENDS)
    return data


def _changed_section(base: Any, change: Any, backend: bool) -> Any:
    """A section with ``change`` applied: a backend section naming another backend starts afresh
    (the old backend's options mean nothing to the new one); otherwise keys are replaced one by one."""
    if backend and isinstance(base, str):
        base = {"backend": base}
    if not isinstance(base, dict) or not isinstance(change, dict):
        return change
    if backend and change.get("backend", base.get("backend")) != base.get("backend"):
        return dict(change)
    return {**base, **change}


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for depth, part in enumerate(parts[:-1]):
        if depth == 0 and part in _BACKENDS and isinstance(node.get(part), str):
            node[part] = {"backend": node[part]}  # "mt: llm" is short for {backend: llm}: an option opens it
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InputError(f"override {key}: {part} is not a section")
    node[parts[-1]] = value


def _build(data: dict[str, Any]) -> Config:
    # Frozen once built: a run never changes its configuration (dataclasses.replace makes a new one).
    defaults, given = Config(), {}
    for key, value in data.items():
        if key in _SECTIONS:
            given[key] = _section(_SECTIONS[key], value, key)
        elif key in _BACKENDS:
            given[key] = _backend_section(getattr(defaults, key), value, key)
        elif key in ("src_lang", "tgt_lang", "device", "dtype"):
            given[key] = str(value)
        else:
            raise InputError(f"unknown config key {key!r}: known are {', '.join(_known_top())}")
    return dataclasses.replace(defaults, **given)


def _known_top() -> list[str]:
    return ["src_lang", "tgt_lang", "device", "dtype", *_SECTIONS, *_BACKENDS]


def _section(cls: type, value: Any, name: str) -> Any:
    if not isinstance(value, dict):
        raise InputError(f"config section {name} must be a mapping")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in value:
        if key not in known:
            raise InputError(f"unknown key {name}.{key}: known are {', '.join(known)}")
    return coerce(cls, value, name)


def _backend_section(default: BackendSection, value: Any, name: str) -> BackendSection:
    if isinstance(value, str):  # "mt: none" is short for "mt: {backend: none}"
        return BackendSection(value)
    if not isinstance(value, dict):
        raise InputError(f"config section {name} must be a backend name or a mapping")
    value = dict(value)
    backend = str(value.pop("backend", default.backend))
    options = dict(default.options) if backend == default.backend else {}
    options.update(value)
    return BackendSection(backend, options)


def coerce(cls: type, values: dict[str, Any], where: str) -> Any:
    """Make dataclass ``cls`` from ``values``, turning YAML scalars into the declared types and
    refusing numbers outside their declared ranges."""
    # get_type_hints resolves the string annotations that `from __future__ import annotations`
    # leaves, in the namespace of the module defining cls (backend configs live elsewhere).
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        hint = unoptional(hints.get(key, Any))  # None values never reach _convert
        try:
            kwargs[key] = value if value is None else _convert(hint, value)
        except (TypeError, ValueError):
            name = getattr(typing.get_origin(hint) or hint, "__name__", str(hint))  # "list", not "list[float]"
            raise InputError(f"{where}.{key} must be {name}, not {value!r}") from None
    obj = cls(**kwargs)
    bounds.check(obj, where)
    return obj


def _convert(hint: Any, value: Any) -> Any:
    kind = typing.get_origin(hint) or hint
    args = typing.get_args(hint)
    if kind is bool:
        return _as_bool(value)
    if kind in (int, float) and isinstance(value, bool):  # YAML's true is not a number
        raise TypeError(value)
    if kind is int:
        if isinstance(value, float) and not value.is_integer():  # int(2.5) would silently give 2
            raise ValueError(value)
        return int(value)
    if kind is float:
        return float(value)
    if kind is str:
        if isinstance(value, (list, dict)):  # str() would turn a mistaken [a, b] into "['a', 'b']"
            raise TypeError(value)
        return str(value)
    if kind is list:
        if not isinstance(value, (list, tuple)):
            raise TypeError(value)
        return [_convert(args[0], v) for v in value] if args else list(value)
    if kind is dict:
        if not isinstance(value, dict):
            raise TypeError(value)
        if len(args) == 2:
            return {_convert(args[0], k): _convert(args[1], v) for k, v in value.items()}
        return dict(value)
    return value  # Any, unions and other hints: nothing to check against


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)
