"""Apertium, the offline profile's rule-based MT (Debian's apertium + apertium-eng-spa), run for real."""

import os
import shutil

import pytest
import sacrebleu
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3tvr.backends import registry
from s3tvr.config import BackendSection, load_config
from s3tvr.errors import SetupError

from conftest import manifest

pytestmark = pytest.mark.skipif(shutil.which("apertium") is None, reason="Debian's apertium is not installed: ./setup.sh as root")


def apertium(src: str, tgt: str, **options):
    return registry.create("mt", BackendSection("apertium", options), src_lang=src, tgt_lang=tgt)


@pytest.fixture(scope="module")
def en_es():
    mt = apertium("en", "es")
    mt.setup()
    yield mt
    mt.cleanup()


def test_one_pipeline_translates_many_sentences_in_both_directions(en_es):
    refs = [c for c in manifest().values() if c["lang"] == "en"]
    sentences = [c["ref_eng"] for c in refs] * 25  # 50 sentences, each answered before the next is asked
    out = en_es.translate(sentences)
    assert en_es.starts == 1 and len(out) == len(sentences)
    assert out[:2] == out[2:4]  # the same sentence, the same answer: nothing shifted between sentences
    chrf = sacrebleu.CHRF().corpus_score(out[:2], [[c["ref_spa"] for c in refs]]).score
    unrelated = sacrebleu.CHRF().corpus_score(out[:2], [[c["ref_spa"] for c in reversed(refs)]]).score
    assert chrf >= 40 and chrf > unrelated + 15, (out[:2], chrf, unrelated)
    # Characters Apertium's stream format reserves come through as written.
    assert en_es.translate_text("It is [very] happy, at 5 $ / hour!") == "Es [muy] feliz, en 5 $ / hora!"

    es_en = apertium("es", "en")
    es_en.setup()
    try:
        assert "cat" in es_en.translate_text("El gato duerme en la casa.").lower()
    finally:
        es_en.cleanup()


@pytest.mark.parametrize("sentence", ["It costs x^", "Hello ^@", "a $^", "the end.^", "back\\", "^", "a ^b$ c"])
def test_a_reserved_character_anywhere_is_translated_without_a_hang(en_es, sentence):
    """A caret at the end once hung lrx-proc (an escaped caret defeated the NUL flush): 60 s, then a failure."""
    starts = en_es.starts
    out = en_es.translate_text(sentence)
    assert en_es.starts == starts  # answered by the running pipeline: no timeout, no restart
    for ch in "^$@\\":
        assert out.count(ch) == sentence.count(ch), (sentence, out)


# Any text a recogniser or a user could give: reserved characters, controls, NUL, private use, any script.
ANY_TEXT = st.text(st.one_of(st.sampled_from(list("\\[]^$/@<>{}*#+~\0\n\r\t .,?!'\"")),
                             st.characters(codec="utf-8")), max_size=40)


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ANY_TEXT)
def test_no_text_stalls_or_kills_the_pipeline(en_es, text):
    starts = en_es.starts
    out = en_es.translate_text(text)
    assert en_es.starts == starts and isinstance(out, str)
    assert ("^" in out) == ("^" in text)  # what the format reserves comes through as it was written


def test_a_killed_pipeline_is_started_again_and_the_sentence_still_translated(en_es):
    before = en_es.starts
    os.killpg(en_es.process.pid, 9)
    en_es.process.wait()
    assert "gato" in en_es.translate_text("The cat sleeps.")
    assert en_es.starts == before + 1


def test_a_pipeline_that_cannot_run_fails_the_sentence_with_its_reason(tmp_path):
    # A pair whose dictionary is gone: the pipeline starts and dies at once, twice.
    (tmp_path / "eng-spa.mode").write_text(f"lt-proc '{tmp_path / 'missing.automorf.bin'}'\n")
    mt = apertium("en", "es", modes_dir=str(tmp_path))
    mt.setup()
    with pytest.raises(RuntimeError, match="failed twice on one sentence") as failed:
        mt.translate(["Hello."])
    assert "\n" not in str(failed.value)
    mt.cleanup()


def test_a_pipeline_that_does_not_answer_fails_the_sentence_once_and_the_next_gets_a_fresh_one(tmp_path):
    (tmp_path / "eng-spa.mode").write_text("tail -f /dev/null\n")  # never answers
    mt = apertium("en", "es", modes_dir=str(tmp_path), timeout_s=1)
    mt.setup()
    with pytest.raises(RuntimeError, match="did not answer"):
        mt.translate(["Hello."])
    assert mt.starts == 1 and mt.process is None  # not asked twice: it would hang again
    mt.cleanup()


def test_a_missing_pair_names_the_debian_package():
    with pytest.raises(SetupError, match="apt-get install apertium-es-pt"):
        apertium("es", "pt")
    with pytest.raises(SetupError, match="Debian has no Apertium pair for en->ja"):
        apertium("en", "ja")
    with pytest.raises(SetupError, match="mode spa-eng_GB is not installed"):
        apertium("es", "en", mode="spa-eng_GB")


def test_the_offline_preset_translates_with_the_llm_both_ways_and_apertium_or_whisper_on_request():
    into_es = load_config("offline", src_lang="en", tgt_lang="es")
    assert into_es.asr.options["task"] == "transcribe" and into_es.asr.options["model"] == "auto"
    assert into_es.mt.backend == "llm" and into_es.tts.backend == "kokoro" and "voice" not in into_es.tts.options
    into_en = load_config("offline", src_lang="es", tgt_lang="en")
    assert (into_en.asr.options["task"], into_en.mt.backend, into_en.tts.backend) == ("transcribe", "llm", "piper")
    # The earlier defaults, as the preset's comment says: Apertium alone, Whisper's translate task into English.
    assert load_config("offline", ["mt=apertium"], src_lang="en", tgt_lang="es").mt.backend == "apertium"
    whisper = load_config("offline", ["asr.task=translate", "mt=none"], src_lang="es", tgt_lang="en")
    assert (whisper.asr.options["task"], whisper.mt.backend) == ("translate", "none")
    # Overrides come after the table: a user's choice wins.
    assert load_config("offline", ["tts=espeak"], src_lang="en", tgt_lang="es").tts.backend == "espeak"
