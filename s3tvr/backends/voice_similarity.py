"""Speaker embeddings (Resemblyzer): how alike two voices are. Eval scores the cloned voice with
them; finetune prepare keeps the target speaker's clips."""

from __future__ import annotations

import warnings
from typing import Any, Optional

import numpy as np

from s3tvr.audio import SAMPLE_RATE
from s3tvr.errors import SetupError

MIN_SPEECH_S = 0.5  # shorter speech (after Resemblyzer trims silence) gives no embedding


class SpeakerEncoder:
    def __init__(self, device: str = "cpu", extra: str = "eval"):
        self.device = "cuda" if device == "cuda" else "cpu"
        self.extra = extra  # the pip extra that brings resemblyzer, for the install hint
        self.model: Any = None

    def setup(self) -> None:
        try:
            with warnings.catch_warnings():  # webrtcvad, under resemblyzer, imports the deprecated pkg_resources
                warnings.simplefilter("ignore")
                from resemblyzer import VoiceEncoder
        except ImportError:
            raise SetupError(f"speaker similarity needs resemblyzer: pip install 's3tvr[{self.extra}]'") from None
        self.model = VoiceEncoder(self.device, verbose=False)

    def embed(self, audio16k: np.ndarray) -> Optional[np.ndarray]:
        """The unit-length voice embedding of 16 kHz speech; None when there is too little speech."""
        from resemblyzer import preprocess_wav

        wav = preprocess_wav(audio16k, source_sr=SAMPLE_RATE)
        return self.model.embed_utterance(wav) if len(wav) >= MIN_SPEECH_S * SAMPLE_RATE else None

    def windows(self, audio16k: np.ndarray, step_s: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
        """Unit embeddings of 1.6 s windows every ``step_s`` over 16 kHz speech, and each window's
        (start, end) in seconds; audio shorter than a window gives one, padded. Unlike
        :meth:`embed`, silence is not trimmed: the windows keep the recording's timeline."""
        from resemblyzer import normalize_volume

        wav = normalize_volume(np.asarray(audio16k, dtype=np.float32), -30, increase_only=True)
        _, partials, slices = self.model.embed_utterance(wav, return_partials=True, rate=1.0 / step_s, min_coverage=0.5)
        return partials, [(s.start / SAMPLE_RATE, s.stop / SAMPLE_RATE) for s in slices]
