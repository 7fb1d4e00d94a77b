"""ASR with NVIDIA NeMo: Parakeet CTC for English, FastConformer hybrid for Spanish, or any NeMo
ASR model by hub name or ``.nemo`` path.

Audio goes to ``transcribe`` as in-memory arrays. Hybrid transducer/CTC models decode with the
decoder chosen in the config (CTC by default: one pass over the frames, no per-token loop, the
lower latency). Models whose vocabulary has no capitals or punctuation (Parakeet CTC) get the
sentence's casing and final punctuation restored, which MT and sentence splitting rely on.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from s3tvr.backends.device import torch_dtype
from s3tvr.backends.kinds import AsrBackend, Word
from s3tvr.errors import InputError, SetupError, brief
from s3tvr.weights import downloaded

log = logging.getLogger(__name__)

DEFAULT_MODELS = {"en": "nvidia/parakeet-ctc-1.1b", "es": "nvidia/stt_es_fastconformer_hybrid_large_pc"}


@dataclass
class Config:
    model: str = "auto"  # auto: parakeet-ctc-1.1b (en), stt_es_fastconformer_hybrid_large_pc (es); a NeMo name or .nemo path
    decoder: str = "ctc"  # hybrid models only: ctc (faster) or rnnt (the transducer)
    restore_case: str = "auto"  # auto: when the model's vocabulary lacks capitals/punctuation; on | off


class Backend(AsrBackend):
    backend = "nemo"
    word_times = True

    def __init__(self, config: Config, src_lang: str, tgt_lang: str, device: str = "cpu", dtype: str = "auto"):
        if config.decoder not in ("ctc", "rnnt"):
            raise InputError(f"asr.decoder must be ctc or rnnt, not {config.decoder!r}")
        if config.restore_case not in ("auto", "on", "off"):
            raise InputError(f"asr.restore_case must be auto, on or off, not {config.restore_case!r}")
        name = config.model
        if name == "auto":
            if src_lang not in DEFAULT_MODELS:
                raise InputError(f"no default NeMo model for {src_lang}: give one with --set asr.model=NAME_OR_PATH "
                                 f"(defaults exist for {', '.join(DEFAULT_MODELS)})")
            name = DEFAULT_MODELS[src_lang]
        self.model_name = downloaded.resolve(name)
        if downloaded.looks_like_path(self.model_name) and not self._nemo_file():
            raise SetupError(f"NeMo model {self.model_name} not found: give a .nemo file or a folder holding one "
                             f"(asr.model=PATH), a hub name, or run s3tvr download asr-{src_lang}")
        super().__init__(src_lang, tgt_lang)
        self.config = config
        self.device = device
        self.dtype_name = dtype
        self.model: Any = None
        self.restore = config.restore_case == "on"

    def _nemo_file(self) -> Path | None:
        path = Path(self.model_name).expanduser()
        if path.is_file() and path.suffix == ".nemo":
            return path
        found = sorted(path.glob("*.nemo")) if path.is_dir() else []
        return found[0] if found else None

    def setup(self) -> None:
        from nemo.collections.asr.models import ASRModel
        from nemo.utils import logging as nemo_logging

        # NeMo prints through handlers of its own; keep its notes for -vv (debug), its errors always.
        nemo_logging.setLevel(logging.INFO if log.isEnabledFor(logging.DEBUG) else logging.ERROR)
        dtype = torch_dtype(self.dtype_name, self.device)
        nemo_file = self._nemo_file()
        try:
            if nemo_file is not None:
                self.model = ASRModel.restore_from(str(nemo_file), map_location=self.device)
            else:
                self.model = ASRModel.from_pretrained(self.model_name, map_location=self.device)
        except Exception as exc:  # hub, file and config errors alike: one line
            raise SetupError(f"could not load NeMo model {self.model_name!r} ({brief(exc)}): give a .nemo path with asr.model=PATH "
                             f"or run s3tvr download asr-{self.src_lang}") from None
        if hasattr(self.model, "ctc_decoder"):  # hybrid transducer/CTC: pick the decoder on purpose
            self.model.change_decoding_strategy(decoder_type=self.config.decoder, verbose=False)
        self.model.eval()
        if dtype != self.model.dtype:
            self.model.to(dtype=dtype)
        if self.config.restore_case == "auto":
            self.restore = not _has_case_and_punctuation(_vocabulary(self.model))
            if self.restore:
                log.info("%s writes without capitals or punctuation: restoring them", self.model_name)

    def transcribe(self, audio: np.ndarray, language: str, *, utt_id: int = 0, hotwords: Sequence[str] = ()) -> str:
        """The utterance's text; the model hears the language it was built for, whatever ``language`` says.
        ``hotwords`` are not used: NeMo's word boosting needs a decoder built for it (left undone)."""
        import torch

        with torch.inference_mode():
            hyps = self.model.transcribe([audio], batch_size=1, verbose=False)
        if isinstance(hyps, tuple):  # some transducer versions return (best, all)
            hyps = hyps[0]
        text = hyps[0] if isinstance(hyps[0], str) else hyps[0].text
        text = " ".join(text.split())
        return restore_case(text, self.src_lang) if text and self.restore else text

    def words(self, audio: np.ndarray, hotwords: Sequence[str] = ()) -> list[Word]:
        """The words of ``audio`` (16 kHz) with their times (NeMo's timestamps from the alignment)."""
        import torch

        with torch.inference_mode():
            hyps = self.model.transcribe([audio], batch_size=1, verbose=False, timestamps=True)
        if isinstance(hyps, tuple):
            hyps = hyps[0]
        stamps = (getattr(hyps[0], "timestamp", None) or {}).get("word", [])
        words = [Word(str(w.get("word", "")).strip(), float(w["start"]), float(w["end"])) for w in stamps
                 if str(w.get("word", "")).strip() and "start" in w and "end" in w]
        if self.restore and words:  # the sentence's case and end, as in transcribe()
            restored = restore_case(" ".join(w.text for w in words), self.src_lang).split()
            if len(restored) == len(words):
                words = [Word(t, w.start, w.end, w.probability) for t, w in zip(restored, words)]
        return words

    def cleanup(self) -> None:
        self.model = None


def _vocabulary(model: Any) -> list[str]:
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "vocab"):
        return list(tokenizer.vocab)
    decoder = getattr(model, "decoder", None)
    return list(getattr(decoder, "vocabulary", []) or [])


def _has_case_and_punctuation(vocab: list[str]) -> bool:
    text = "".join(vocab)
    return any(c.isupper() for c in text) and any(c in ".?!" for c in text)


def restore_case(text: str, lang: str) -> str:
    """Casing and final punctuation for an all-lowercase, unpunctuated transcript: the first word
    capitalised, English "i" as "I", a full stop at the end (a question mark after an English
    question opener). MT models translate such a sentence closer to a written one."""
    text = text.strip()
    if lang == "en":
        text = re.sub(r"\bi\b", "I", text)
        text = re.sub(r"\bi'(m|ll|ve|d)\b", lambda m: "I'" + m.group(1), text)
    text = text[:1].upper() + text[1:]
    if text and text[-1] not in ".?!":
        question = lang == "en" and re.match(r"(?i)(who|what|when|where|why|how|is|are|do|does|did|can|could|would|will)\b", text)
        text += "?" if question else "."
    return text
