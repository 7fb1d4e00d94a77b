"""Speech translation at the text level on FLORES sentences spoken by the offline voices (synthetic:
Kokoro jm_kumo reads the Spanish, Piper joe the English): the parts bench_translation.py's second
table is made of. Whisper base hears each sentence, then Apertium or the LLM translator (with the
earlier sentences as context) translates it; into English, Whisper's own translate task is the
third system. The spoken clips are cached (a rerun only listens and translates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from s3tvr.audio import SAMPLE_RATE
from s3tvr.backends import registry
from s3tvr.backends.kinds import MtContext
from s3tvr.config import BackendSection

VOICES = {"es": BackendSection("kokoro"), "en": BackendSection("piper", {"voice": "bundled:joe"})}


def spoken(lines: list[str], lang: str, folder: Path) -> list[np.ndarray]:
    """Each line read by the offline voice of ``lang``, at 16 kHz (cached)."""
    folder.mkdir(parents=True, exist_ok=True)
    tts = None
    out = []
    for i, line in enumerate(lines):
        path = folder / f"{lang}-{i:04d}.wav"
        if not path.is_file():
            if tts is None:
                tts = registry.create("tts", VOICES[lang], src_lang=lang, tgt_lang=lang)
                tts.setup()
            audio = np.concatenate(list(tts.speak(line)))
            sf.write(path, soxr.resample(audio, tts.sample_rate, SAMPLE_RATE), SAMPLE_RATE)
        out.append(sf.read(path, dtype="float32")[0])
    if tts is not None:
        tts.cleanup()
    return out


def heard(clips: list[np.ndarray], src: str, task: str) -> list[str]:
    asr = registry.create("asr", BackendSection("faster-whisper", {"model": "bundled:base", "task": task}),
                          src_lang=src, tgt_lang="en" if task == "translate" else src)
    asr.setup()
    try:
        return [asr.transcribe(clip, src) for clip in clips]
    finally:
        asr.cleanup()


def translated(system: str, src: str, tgt: str, texts: list[str]) -> list[str]:
    section = BackendSection("llm", {"pace_s": 0, "context_sentences": 2}) if system == "llm" else BackendSection(system)
    mt = registry.create("mt", section, src_lang=src, tgt_lang=tgt)
    mt.setup()
    out, context = [], MtContext()
    try:
        for text in texts:
            out.append(mt.translate_text(text, context))
            context = context.then(text, out[-1], mt.context_sentences)
    finally:
        mt.cleanup()
    return out


