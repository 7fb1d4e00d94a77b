"""The spoken language of a recording, for features that must know it before choosing models
(``s3tvr dub --from auto``, ``s3tvr finetune prepare`` without ``--lang``).

Whisper base (the bundled weights) decides, loaded the one way Whisper loads
(:func:`s3tvr.backends.asr.faster_whisper.load_model`) and only when asked.
"""

from __future__ import annotations

import logging

import numpy as np

from s3tvr.errors import InputError

log = logging.getLogger(__name__)


def detect_language(audio16k: np.ndarray) -> str:
    """The language spoken in 16 kHz ``audio16k`` (its first 30 s), as a Whisper code ("es")."""
    from s3tvr.backends.asr import faster_whisper as whisper

    try:
        model = whisper.load_model("bundled:base", device="cpu", compute_type="int8")
    except ImportError:
        raise InputError("the input's language cannot be detected without faster-whisper: give --from LANG") from None
    language, probability = whisper.spoken_language(model, audio16k)
    log.info("detected %s (%.0f %%)", language, probability * 100)
    return language
