"""The engine: the loaded models of one configuration, shared by every session run over it.

Models load once (``setup()``, or ``load(kind)`` for one of them), however many sessions run,
one after another or at the same time, and are freed once (``cleanup()``). ``engine.asr``,
``engine.mt`` and ``engine.tts`` are the models (dubbing, eval and fine-tuning call them
directly); ``engine.stages`` run them in a session's pipeline (:mod:`s3tvr.live.stages`). A
model that is not safe to call from two threads gets a lock that every session's worker takes
around it; whatever belongs to one run (its audio, segmenter stream, voice, queues, sink and
log) lives in its :class:`~s3tvr.live.session.Session`, never in a model object.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from s3tvr.audio.denoise import Denoiser
from s3tvr.backends import registry
from s3tvr.backends.asr import pass_cost_s
from s3tvr.backends.device import check_device
from s3tvr.config import Config
from s3tvr.errors import InputError
from s3tvr.live import turn as smart_turn
from s3tvr.live.segmenter import load_vad
from s3tvr.live.simultaneous import auto_mode
from s3tvr.live.stages import stage_for

if TYPE_CHECKING:
    from s3tvr.live.session import Session

log = logging.getLogger(__name__)

KINDS = ("asr", "mt", "tts")


class Engine:
    """Build it, then open sessions on it (:meth:`session`); nothing loads before ``setup()``.

    ``kinds``: the backends this engine serves (``("asr",)`` for work that only listens, such as
    preparing a fine-tuning dataset); with all three, they must lead from the source language
    to the target's voice."""

    # A conversation's two languages (TalkEngine: each session tells which one each utterance is in); () here.
    languages: tuple[str, ...] = ()

    def __init__(self, config: Config, kinds: tuple[str, ...] = KINDS):
        check_device(config.device)
        self.config = config
        self.asr, self.mt, self.tts = build_backends(config, kinds)
        self.denoiser = Denoiser(config.denoise) if config.denoise.enabled and self.asr is not None else None
        # The models in pipeline order, by stage name (denoise, asr, mt, tts), and their stages.
        self.models = {m.name: m for m in (self.denoiser, self.asr, self.mt, self.tts) if m is not None}
        self.stages = [stage_for(m) for m in self.models.values()]
        # One lock per model that two threads must not call at once; sessions' workers share it.
        self.locks = {name: threading.Lock() for name, m in self.models.items() if not m.thread_safe}
        self.loads: dict[str, dict[str, float]] = {}  # name -> seconds, rss_mb (and cuda_mb) its load took
        self._loaded: set[str] = set()
        self._load_lock = threading.Lock()
        self.pass_s: Optional[float] = None  # a simultaneous pass over 10 s here, timed by setup() in mode auto
        self._calibrated = False
        self._simultaneous = 0  # sessions running in simultaneous mode: their passes share the ASR
        self._modes_lock = threading.Lock()
        self._vad: Any = None
        self._turn: Any = None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    @property
    def description(self) -> str:
        return " -> ".join(f"{s.name}:{s.backend}" for s in self.stages)

    def setup(self, on_progress: Callable[[str], None] = lambda name: None) -> None:
        """Load every model that is not loaded yet, in order; the first failure propagates."""
        self.load(*self._session_parts(), on_progress=on_progress)
        self._calibrate()

    @property
    def loaded(self) -> bool:
        """Has setup() loaded everything a session needs (a server is ready only then)?"""
        return set(self._session_parts()) <= self._loaded

    def _session_parts(self) -> list[str]:
        return ["vad", *(["turn"] if self.config.vad.turn else []), *self.models]

    def load(self, *names: str, on_progress: Callable[[str], None] = lambda name: None) -> None:
        """Load the named parts (vad, turn, and the models: denoise, asr, mt, tts) once; later calls return at once."""
        with self._load_lock:
            for name in names:
                if name in self._loaded:
                    continue
                part = self._part(name)
                on_progress(name)
                log.info("loading %s", name)
                before, cuda_before, t0 = _rss_mb(), _cuda_mb(self.config.device), time.monotonic()
                if name == "vad":
                    self._vad = load_vad(self.config.vad.onnx)
                elif name == "turn":
                    self._turn = smart_turn.load()
                else:
                    part.setup()
                self.loads[name] = {"seconds": round(time.monotonic() - t0, 3), "rss_mb": round(_rss_mb() - before, 1)}
                if self.config.device == "cuda":
                    self.loads[name]["cuda_mb"] = round(_cuda_mb("cuda") - cuda_before, 1)
                self._loaded.add(name)

    def _calibrate(self) -> None:
        """Time one simultaneous pass, once, so that mode auto chooses by what this machine affords
        (for sessions only: setup() calls it; dubbing and fine-tuning load models one by one). In
        mode simultaneous it warms the ASR up: a first pass costs several times the next, and the
        pass pacer would take it for the machine's pace and leave the first utterance to its end."""
        mode = self.config.simultaneous.mode
        with self._load_lock:
            if self._calibrated or mode == "sentence":
                return
            with self.locks.get("asr", contextlib.nullcontext()):
                self.pass_s = self.asr.calibrated_pass_s if self.asr.calibrated_pass_s is not None else pass_cost_s(self.asr)
            self._calibrated = True
        if mode != "auto":
            return
        mode, why = auto_mode(self.pass_s, 1, self.config.simultaneous)
        log.info("mode auto: %s (%s)", mode, why)

    def open_mode(self, live: bool = True) -> tuple[str, str]:
        """The mode of a session starting now, and why; a simultaneous one counts until
        :meth:`close_mode`, so that auto gives the next session sentence mode once the passes of
        those running would no longer fit. ``live``: its input comes at the pace it was spoken (a
        file read as fast as possible has no speaker to keep pace with: auto gives it sentence mode,
        which translates whole utterances, better)."""
        mode = self.config.simultaneous.mode
        with self._modes_lock:
            if mode == "auto" and not live:
                mode, why = "sentence", "the input is read as fast as possible: there is no speaker to keep pace with"
            elif mode == "auto":
                mode, why = auto_mode(self.pass_s, self._simultaneous + 1, self.config.simultaneous)
            else:
                why = f"simultaneous.mode={mode}"
            self._simultaneous += mode == "simultaneous"
        return mode, why

    def close_mode(self, mode: str) -> None:
        with self._modes_lock:
            self._simultaneous -= mode == "simultaneous"

    def _part(self, name: str) -> Any:
        if name in ("vad", "turn"):
            return None
        if name not in self.models:
            raise ValueError(f"this engine has no {name} model")
        return self.models[name]

    def vad_model(self) -> Any:
        """A Silero VAD for one session: the loaded ONNX model's session shared, its stream state
        the session's own (TorchScript keeps state inside the module, so it loads anew)."""
        self.load("vad")
        if self.config.vad.onnx:  # silero's OnnxWrapper: state in plain attributes
            model = copy.copy(self._vad)
            model.reset_states()
            return model
        return load_vad(onnx=False)

    def turn_model(self) -> Any:
        """Smart Turn (vad.turn), for every session's segmenter: stateless, so one for the engine,
        freed with its other models by cleanup()."""
        self.load("turn")
        return self._turn

    def check_languages(self, src: str, tgt: str) -> None:
        """Raise InputError unless a session may translate ``src`` → ``tgt`` over these models: the
        engine's own pair, or another source language for an ASR that hears any (``any_source``)
        when its text is already in the target language (Whisper's translate task into English) or
        its MT translates from any language it is told (the LLM)."""
        cfg = self.config
        if (src, tgt) == (cfg.src_lang, cfg.tgt_lang):
            return
        _check_source(self.asr, src, tgt)
        into_target = self.asr.output_language == cfg.tgt_lang if self.mt is None else self.mt.any_source
        any_source = self.asr.any_source and into_target
        if not (any_source and tgt == cfg.tgt_lang):
            raise InputError(f"these models are loaded for {cfg.src_lang}->{cfg.tgt_lang}"
                             f"{f' (any source into {cfg.tgt_lang})' if any_source else ''}, not {src}->{tgt}: ask for "
                             f"a pair they make, or load models for it (--from {src} --to {tgt})")

    def session(self, **kwargs: Any) -> Session:
        """A new run over this engine's models: see :class:`~s3tvr.live.session.Session`."""
        from s3tvr.live.session import Session  # here: the sources, sinks and pipeline load only for a live run

        return Session(self, **kwargs)

    def cleanup(self) -> None:
        """Free every model; the engine can load them again with setup()."""
        with self._load_lock:
            for name, model in self.models.items():
                if name in self._loaded:
                    try:
                        model.cleanup()
                    except Exception:  # cleanup must not hide the run's outcome
                        log.debug("cleanup of %s failed", name, exc_info=True)
            if self._turn is not None:
                self._turn.cleanup()
            self._vad = self._turn = None
            self._loaded.clear()


def build_backends(cfg: Config, kinds: tuple[str, ...] = KINDS) -> tuple[Any, Any, Any]:
    """The ASR, MT (None for "none") and TTS models of ``cfg`` named in ``kinds``, not set up yet.
    With the ASR and MT, check that they lead from the source language to the target's text; with
    all three, to the target's voice."""
    context = cfg.context()
    asr, mt, tts = (registry.create(kind, getattr(cfg, kind), **context) if kind in kinds else None for kind in KINDS)
    if "asr" not in kinds or "mt" not in kinds:
        return asr, mt, tts
    _check_source(asr, cfg.src_lang, cfg.tgt_lang)
    heard = asr.output_language
    if mt is None and heard != cfg.tgt_lang:
        raise InputError(
            f"no {cfg.src_lang}->{cfg.tgt_lang} translation: ASR {asr.backend} gives {heard} text and mt is none. "
            f"Whisper's translate task (asr.task=translate) reaches English only; other targets need an MT backend "
            f"(mt=…: {', '.join(registry.names('mt'))}), e.g. the model stack: --xtts-dir models/xtts_v2")
    if tts is not None and cfg.tgt_lang not in tts.languages:
        raise InputError(f"TTS {tts.backend} voice speaks {', '.join(sorted(tts.languages))}, not {cfg.tgt_lang}: "
                         f"choose a {cfg.tgt_lang} voice (tts.voice=PATH) or another TTS backend")
    return asr, mt, tts


def _check_source(asr: Any, src: str, tgt: str) -> None:
    if asr.languages is not None and src not in asr.languages:
        raise InputError(f"ASR {asr.backend} does not know the source language {src!r}: choose one of "
                         f"{', '.join(sorted(asr.languages))}")
    if src == tgt:
        raise InputError(f"source and target language are both {src}: choose another target with --to")


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _cuda_mb(device: str) -> float:
    if device != "cuda":
        return 0.0
    import torch

    return torch.cuda.memory_allocated() / 2**20
