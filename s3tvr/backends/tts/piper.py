"""TTS with Piper: a fast CPU voice without cloning, the fallback where XTTS or a GPU is missing.

The text is spoken piece by piece: sentence by sentence, and a long sentence clause by clause
(s3tvr.text.split_clauses); each piece goes to playback as soon as it is synthesised, so the first
clause plays while the rest is computed instead of after the whole utterance.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import numpy as np

from s3tvr.backends.kinds import TtsBackend
from s3tvr.bounds import Range
from s3tvr.errors import SetupError
from s3tvr.text import split_clauses
from s3tvr.weights import bundled


@dataclass
class Config:
    voice: str = "bundled:joe"  # path to a Piper .onnx voice (its .onnx.json beside it) or bundled:joe
    length_scale: Optional[Annotated[float, Range(0.25, 4)]] = None  # >1 speaks slower; None: the voice's own
    speaker_id: Optional[Annotated[int, Range(0)]] = None  # for multi-speaker voices
    clauses: bool = True  # speak long sentences clause by clause: first audio after the first clause, not the sentence


class Backend(TtsBackend):
    backend = "piper"
    speaking_rate = True

    def __init__(self, config: Config, src_lang: str, tgt_lang: str, device: str = "cpu", dtype: str = "auto"):
        # dtype does not apply: Piper's ONNX voices are float32
        super().__init__(src_lang, tgt_lang)
        self.config = config
        self.device = device
        self.voice_path = Path(bundled.resolve(config.voice))
        self.config_path = self.voice_path.with_name(self.voice_path.name + ".json")
        if not self.voice_path.is_file() or not self.config_path.is_file():
            raise SetupError(f"Piper voice {self.voice_path} (and its .onnx.json) not found: give tts.voice=PATH/voice.onnx")
        meta = json.loads(self.config_path.read_text())
        self.language = str(meta.get("language", {}).get("code", "")).split("_")[0]
        self.sample_rate = int(meta.get("audio", {}).get("sample_rate", self.sample_rate))
        self.voice: Any = None

    @property
    def languages(self) -> frozenset[str]:
        return frozenset({self.language})

    def setup(self) -> None:
        from piper import PiperVoice

        try:
            self.voice = PiperVoice.load(self.voice_path, self.config_path, use_cuda=self.device == "cuda")
        except Exception as exc:
            raise SetupError(f"could not load Piper voice {self.voice_path}: {exc}") from None
        self.sample_rate = int(self.voice.config.sample_rate)

    def speak(self, text: str, voice: Any = None, speech: Optional[np.ndarray] = None, rate: float = 1.0, *,
              utt_id: int = 0) -> Iterator[np.ndarray]:
        """Clause by clause in the voice file's voice (``voice`` and ``speech`` do not apply)."""
        if not re.search(r"\w", text):
            return
        from piper import SynthesisConfig

        base = self.config.length_scale or float(self.voice.config.length_scale)
        syn = SynthesisConfig(speaker_id=self.config.speaker_id, length_scale=base / rate)
        pieces = split_clauses(text) if self.config.clauses else [text]
        for piece in pieces:
            for chunk in self.voice.synthesize(piece, syn_config=syn):
                yield soften_edges(np.asarray(chunk.audio_float_array, dtype=np.float32), chunk.sample_rate)

    def cleanup(self) -> None:
        self.voice = None


def soften_edges(audio: np.ndarray, rate: int, seconds: float = 0.005) -> np.ndarray:
    """``audio`` with 5 ms ramps in and out. Piper starts a clause cut at a comma with its first
    phoneme already sounding (0.05 peak in the first 5 ms where measured), which clicks when played
    right after the previous clause; its sentence ends fade out by themselves."""
    n = min(int(seconds * rate), len(audio) // 2)
    if n:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        audio = audio.copy()
        audio[:n] *= ramp
        audio[-n:] *= ramp[::-1]
    return audio
