"""TTS with eSpeak NG, and the one place that runs the espeak-ng program.

eSpeak NG is a formant synthesiser: robotic, but it speaks a hundred languages, needs no model and
makes a clause in milliseconds on any CPU. Two uses here:

- :func:`ipa`: the IPA phonemes of a text, which Kokoro (:mod:`s3tvr.backends.tts.kokoro`) speaks;
  Kokoro v1.0 was trained on espeak-ng's IPA for every language but English and Japanese.
- :class:`Backend`: espeak-ng's own voice, streamed clause by clause like Piper.

The program is Debian's ``espeak-ng`` package (``apt-get install espeak-ng``), run as a subprocess:
a call costs a few milliseconds, and no Python binding needs installing.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Annotated, Any, Iterator, Optional

import numpy as np

from s3tvr.backends.kinds import TtsBackend
from s3tvr.backends.tts.piper import soften_edges
from s3tvr.bounds import Range
from s3tvr.errors import SetupError
from s3tvr.text import split_clauses

log = logging.getLogger(__name__)

PROGRAM = "espeak-ng"
INSTALL = "apt-get install espeak-ng"
SAMPLE_RATE = 22050  # of every espeak-ng voice's --stdout WAV
WPM = 175  # espeak-ng's default speaking rate, words per minute: rate 1.0
_WAV_HEADER = 44  # --stdout writes a plain 44-byte RIFF header, then 16-bit mono PCM

# Our language codes -> espeak-ng voices. American English and Brazilian Portuguese because
# Kokoro's voices were trained on those variants (and listeners of a translation rarely mind).
VOICES = {
    "en": "en-us", "es": "es", "fr": "fr", "de": "de", "it": "it", "pt": "pt-br", "pl": "pl", "tr": "tr",
    "ru": "ru", "nl": "nl", "cs": "cs", "ar": "ar", "zh": "cmn", "ja": "ja", "hu": "hu", "ko": "ko", "hi": "hi",
}

# A punctuation mark ends a piece: espeak-ng drops punctuation from its IPA, but Kokoro reads it
# as prosody (a pause at a comma, a rise at a question), so each piece is phonemised alone and
# its mark put back. Spanish's opening ¿ ¡ are dropped: no model token, and the closing mark does it.
_PIECE = re.compile(r"([^,.;:!?…]*)([,.;:!?…]*)")


# Where espeak-ng reads a word in another language (Latin letters in Russian text) it marks the
# switch, "(^e^n)...(^r^u)" with ties: a marker, not a sound.
_SWITCH = re.compile(r"\([a-z^-]+\)")


def voice_of(lang: str) -> str:
    """The espeak-ng voice for one of our language codes (an espeak-ng voice name passes through)."""
    return VOICES.get(lang, lang)


def program() -> str:
    """The espeak-ng executable, or a SetupError naming the package that installs it."""
    path = shutil.which(PROGRAM)
    if path is None:
        raise SetupError(f"{PROGRAM} is not installed (not found on PATH): {INSTALL}")
    return path


def run(args: list[str], text: str) -> bytes:
    """espeak-ng's stdout for ``text`` (given on stdin, so no text is ever taken for an option).
    ``-q`` (no sound) for phonemes only: with --stdout it silences the WAV too."""
    proc = subprocess.run([program(), *args], input=text.encode(), capture_output=True)
    if proc.returncode != 0 or proc.stderr.strip():
        # A voice it lacks is the usual cause: espeak-ng says so on stderr (and may still exit 0).
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise SetupError(f"{PROGRAM} failed ({message[0] if message else f'exit {proc.returncode}'}): "
                         f"check the voice exists (espeak-ng --voices) or reinstall: {INSTALL}")
    return proc.stdout


def check_voice(lang: str) -> None:
    """A SetupError now, not at the first utterance, when espeak-ng or its voice for ``lang`` is missing."""
    run(["-q", "--ipa", "-v", voice_of(lang)], "a")


def ipa(text: str, lang: str) -> str:
    """The IPA phonemes of ``text`` as espeak-ng says them in ``lang``, with stress marks, tied
    multi-letter phonemes joined by ``^`` (``t^ʃ``), and the text's punctuation kept: "Hola, amigo."
    -> "ˈola, amˈiɣo."."""
    words, marks = [], []
    for found in _PIECE.finditer(text):
        if found[1].strip() or found[2]:
            words.append(found[1].replace("¿", " ").replace("¡", " ").strip())
            marks.append(found[2])
    said = _phonemise_lines(words, lang)
    return " ".join(f"{s}{m}" for s, m in zip(said, marks) if s or m).strip()


def _phonemise_lines(pieces: list[str], lang: str) -> list[str]:
    """Each piece's phonemes, one espeak-ng call per piece: in one call espeak-ng cuts clauses
    where it likes, and its lines no longer match the pieces."""
    out = []
    for piece in pieces:
        if not re.search(r"\w", piece):
            out.append("")
            continue
        said = run(["-q", "--ipa", "--tie=^", "-v", voice_of(lang)], piece).decode()
        out.append(" ".join(_SWITCH.sub("", said).split()))
    return out


@dataclass
class Config:
    voice: str = ""  # an espeak-ng voice (espeak-ng --voices: es, en-us, fr, es+f3 ...); "" the target language's
    wpm: Annotated[int, Range(80, 450)] = WPM  # words per minute at rate 1.0
    pitch: Annotated[int, Range(0, 99)] = 50  # espeak-ng's -p: 50 is the voice's own
    clauses: bool = True  # speak long sentences clause by clause: first audio after the first clause


class Backend(TtsBackend):
    backend = "espeak"
    speaking_rate = True
    thread_safe = True  # each call is its own process
    sample_rate = SAMPLE_RATE

    def __init__(self, config: Config, src_lang: str, tgt_lang: str, device: str = "cpu", dtype: str = "auto"):
        # device and dtype do not apply: espeak-ng runs on the CPU, in integers
        super().__init__(src_lang, tgt_lang)
        self.config = config
        self.voice = config.voice or voice_of(tgt_lang)

    @property
    def languages(self) -> frozenset[str]:
        if self.config.voice:
            return frozenset({self.tgt_lang})
        return frozenset(VOICES)

    def setup(self) -> None:
        check_voice(self.voice)

    def speak(self, text: str, voice: Any = None, speech: Optional[np.ndarray] = None, rate: float = 1.0, *,
              utt_id: int = 0) -> Iterator[np.ndarray]:
        """Clause by clause in espeak-ng's voice (``voice`` and ``speech`` do not apply)."""
        if not re.search(r"\w", text):
            return
        wpm = round(min(max(self.config.wpm * rate, 80), 900))  # espeak-ng's own limits
        args = ["--stdout", "-v", self.voice, "-s", str(wpm), "-p", str(self.config.pitch)]
        for piece in split_clauses(text) if self.config.clauses else [text]:
            pcm = run(args, piece)[_WAV_HEADER:]
            audio = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
            if len(audio):
                yield soften_edges(audio, SAMPLE_RATE)
