"""The offline profile into Spanish, end to end with real parts: Whisper base transcribes English,
the LLM translates (Apertium where a reply is refused), Kokoro speaks Spanish; Whisper base listens
to the result."""

import shutil

import pytest
import sacrebleu

from s3tvr.audio.decode import load_audio
from s3tvr.latency.record import read_log

from conftest import manifest, s3tvr

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("apertium") is None or shutil.which("espeak-ng") is None,
                                 reason="Debian's apertium and espeak-ng are not installed: ./setup.sh as root")]
faster_whisper = pytest.importorskip("faster_whisper")


@pytest.fixture(scope="module")
def spanish_ear():
    """Whisper base, hearing Spanish."""
    from s3tvr.backends.asr.faster_whisper import load_model

    return load_model("bundled:base")


def hear_spanish(model, path) -> str:
    segments, _ = model.transcribe(load_audio(path), language="es", beam_size=1, condition_on_previous_text=False)
    return " ".join(s.text.strip() for s in segments).strip()


def test_english_speech_comes_out_as_spanish_speech_close_to_the_reference(data, tmp_path, spanish_ear):
    # 004: on 003 ("the cabbage juice changes color…") the 1.5B model itself stumbles ("la jugueta de
    # cebolla"), a translation error this test is not about (the benchmarks measure quality: docs/measurements.md)
    clip, other = "fleurs-en-004.ogg", "fleurs-en-003.ogg"
    out, log = tmp_path / "out.wav", tmp_path / "latency.jsonl"
    proc = s3tvr("run", "en", "--input", data / clip, "--output", out, "--log", log, "--fast", timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = read_log(log)
    assert records and all(r.error is None for r in records), records
    assert {r.stages["mt"].backend for r in records} == {"llm"} and records[0].tgt_lang == "es"
    assert {r.stages["tts"].backend for r in records} == {"kokoro"}
    heard = hear_spanish(spanish_ear, out)
    chrf = sacrebleu.sentence_chrf(heard, [manifest()[clip]["ref_spa"]]).score
    unrelated = sacrebleu.sentence_chrf(heard, [manifest()[other]["ref_spa"]]).score
    # Measured 41 against its own reference and 17 against the other clip's (Kokoro speaking).
    assert chrf >= 35 and chrf > unrelated + 12, (heard, chrf, unrelated)
