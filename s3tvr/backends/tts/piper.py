"""TTS with Piper: a fast CPU voice without cloning, the fallback where XTTS or a GPU is missing.

Piper splits the text into sentences and synthesizes one at a time; each sentence goes to
playback as soon as it is ready, so the first sentence plays while the next is computed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import numpy as np

from s3tvr import bundled
from s3tvr.backends.kinds import TtsBackend
from s3tvr.bounds import Range
from s3tvr.errors import SetupError
from s3tvr.messages import AudioChunk


@dataclass
class Config:
    voice: str = "bundled:joe"  # path to a Piper .onnx voice (its .onnx.json beside it) or bundled:joe
    length_scale: Optional[Annotated[float, Range(0.25, 4)]] = None  # >1 speaks slower; None: the voice's own
    speaker_id: Optional[Annotated[int, Range(0)]] = None  # for multi-speaker voices
    first_clause: bool = True  # speak a long first sentence's opening clause on its own: first audio sooner


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

    def process(self, item: Any) -> Iterator[AudioChunk]:
        if not re.search(r"\w", item.text):
            return
        from piper import SynthesisConfig

        base = self.config.length_scale or float(self.voice.config.length_scale)
        syn = SynthesisConfig(speaker_id=self.config.speaker_id, length_scale=base / item.utt.rate)
        pieces = split_first_clause(item.text) if self.config.first_clause else [item.text]
        for piece in pieces:
            for chunk in self.voice.synthesize(piece, syn_config=syn):
                item.utt.out_dur_s += len(chunk.audio_float_array) / chunk.sample_rate
                yield AudioChunk(item.utt, np.asarray(chunk.audio_float_array, dtype=np.float32), chunk.sample_rate)

    def cleanup(self) -> None:
        self.voice = None


def split_first_clause(text: str, min_words: int = 4, max_words: int = 12) -> list[str]:
    """Split off the opening clause of a long first sentence, so that it plays while the rest is
    synthesized: "However, due to the slow channels, styles could lag." -> ["However, due to the
    slow channels,", "styles could lag."]. Short first sentences and unpunctuated text stay whole."""
    text = text.strip()
    end = re.search(r"[.!?]\s+", text)
    first, rest = (text[:end.start() + 1], text[end.end():]) if end else (text, "")
    words = first.split()
    if len(words) <= max_words:
        return [text]
    for i in range(min_words - 1, min(max_words, len(words) - min_words)):
        if words[i][-1] in ",;:":
            return [" ".join(words[:i + 1]), " ".join(words[i + 1:]) + (" " + rest if rest else "")]
    return [text]
