"""s3tvr talk A B: two people, one device. Each utterance's language is detected (scripted by the
fake ASR; Whisper's language ID with the real models), translated into the other and spoken."""

import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from s3tvr import files
from s3tvr.audio.decode import load_audio
from s3tvr.backends.mt import llm
from s3tvr.latency.record import read_log

from conftest import free_port, one_line_error, s3tvr, serving

# A conversation: a Spanish turn, an English answer, Spanish again, 1.5 s of silence between turns.
TURNS = (("fleurs-es-002.ogg", "es"), ("fleurs-en-004.ogg", "en"), ("fleurs-es-004.ogg", "es"))
GAP_S = 1.5
CAPTION = re.compile(r"^\[(\d+)\] (\w\w)→(\w\w): (.+)$")


def conversation(data, path) -> list[tuple[float, float, str]]:
    """Write TURNS to ``path`` (16 kHz WAV); each turn's (start, end, language) on its timeline."""
    gap, audio, spans, t = np.zeros(int(GAP_S * 16000), np.float32), [], [], 0.0
    for clip, lang in TURNS:
        turn = load_audio(data / clip, 16000)
        audio += [turn, gap]
        spans.append((t, t + len(turn) / 16000, lang))
        t += (len(turn) + len(gap)) / 16000
    files.write_wav(path, np.concatenate(audio[:-1]), 16000)
    return spans


def captions(stdout: str) -> list[tuple[int, str, str, str]]:
    return [(int(m[1]), m[2], m[3], m[4]) for line in stdout.splitlines() if (m := CAPTION.match(line))]


def test_each_turn_goes_into_the_other_language_and_its_caption_names_the_direction(data, tmp_path):
    wav, log = tmp_path / "conversation.wav", tmp_path / "talk.jsonl"
    conversation(data, wav)
    proc = s3tvr("talk", "es", "en", "--config", "fake", "--set", "asr.languages=[es, en]", "--set", "asr.delays=[0.01]",
                 "--input", wav, "--fast", "--log", log, "--output", tmp_path / "out.wav")
    assert proc.returncode == 0, proc.stderr
    records = read_log(log)
    assert len(records) >= 3
    for rec in records:  # as scripted: even utterances Spanish, odd ones English, each into the other
        spoken = "es" if rec.utt_id % 2 == 0 else "en"
        assert (rec.src_lang, rec.tgt_lang) == (spoken, {"es": "en", "en": "es"}[spoken]), rec
        assert rec.tgt_text.startswith(f"[{rec.tgt_lang}] ") and rec.out_dur_s > 0 and rec.error is None  # that direction's MT
    assert captions(proc.stdout) == [(r.utt_id, r.src_lang, r.tgt_lang, r.tgt_text) for r in records]
    assert "sentence mode" in proc.stderr  # the fake preset asks for it; talk says nothing more


@pytest.mark.parametrize("args, words", [
    (("en", "en"), ("two different languages",)),
    (("en", "ru"), ("piper", "not ru")),  # the offline preset has no Russian voice: refused before anything loads
    (("en", "es", "--set", "asr.task=translate"), ("asr.task=transcribe",)),
])
def test_a_conversation_the_models_cannot_hold_is_one_line_before_models_load(args, words):
    assert one_line_error(s3tvr("talk", *args, timeout=30), *words)


def test_the_llm_translator_shares_its_loaded_weights_only_with_the_same_settings():
    forward = llm.Backend(llm.Config(), "es", "en")
    assert llm.Backend(llm.Config(), "en", "es").share_weights(forward)
    assert not llm.Backend(llm.Config(n_ctx=4096), "en", "es").share_weights(forward)


# Words only one of the two languages uses often: enough to tell a sentence's language apart.
ENGLISH = {"the", "of", "and", "to", "in", "that", "is", "was", "it", "they", "not", "for", "as", "be", "have", "can",
           "many", "people", "two", "so", "because"}
SPANISH = {"el", "la", "los", "las", "de", "del", "que", "y", "en", "no", "por", "para", "una", "un", "es", "se", "con",
           "muchas", "personas", "porque", "dos", "pueden", "tienen"}


def language_of(text: str) -> str:
    words = re.findall(r"\w+", text.lower())
    english, spanish = sum(w in ENGLISH for w in words), sum(w in SPANISH for w in words)
    return "en" if english > spanish else "es" if spanish > english else "?"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apertium") is None or shutil.which("espeak-ng") is None,
                    reason="Debian's apertium and espeak-ng are not installed: ./setup.sh as root")
def test_a_spanish_and_english_conversation_comes_out_each_turn_in_the_other_language(data, tmp_path):
    pytest.importorskip("faster_whisper")
    wav, log, out = tmp_path / "conversation.wav", tmp_path / "talk.jsonl", tmp_path / "out.wav"
    spans = conversation(data, wav)
    # The LLM translates whatever this machine's pace (not Apertium, its live fallback on a slow or busy one):
    # one loaded model, both directions.
    proc = s3tvr("talk", "es", "en", "--input", wav, "--fast", "--log", log, "--output", out,
                 "--set", "mt.pace_s=0", "--set", "mt.late_s=0", timeout=400)
    assert proc.returncode == 0, proc.stderr
    records = read_log(log)
    assert records and all(r.error is None for r in records), records
    heard = set()
    for rec in records:
        spoken = next(lang for start, end, lang in spans if start - 0.5 <= rec.seg_start_s <= end)
        heard.add(spoken)
        into = {"es": "en", "en": "es"}[spoken]
        assert (rec.src_lang, rec.tgt_lang) == (spoken, into), rec  # Whisper's language ID, between the two
        assert language_of(rec.src_text) == spoken and language_of(rec.tgt_text) == into, rec
        assert rec.stages["tts"].backend == {"en": "piper", "es": "kokoro"}[into] and rec.out_dur_s > 0.5, rec
    assert heard == {"es", "en"}
    assert [c[1:3] for c in captions(proc.stdout)] == [(r.src_lang, r.tgt_lang) for r in records]
    speech, rate = sf.read(out)
    for rec in records:  # the translated speech is in the file, from where its turn was spoken
        start = int(rec.seg_start_s * rate)
        assert np.abs(speech[start:start + int(rec.out_dur_s * rate)]).max() > 0.05, rec
    assert "one llm translator for both directions" in proc.stderr


def test_the_asr_stage_sets_each_utterances_direction_and_voice_from_the_language_it_detects():
    """The model was built for es->en; an utterance detected as English is heard as English text
    (its src_text, not taken for a translation), goes into Spanish, and gets the English speaker's voice."""
    from s3tvr.backends.fake import FakeAsr, FakeAsrConfig
    from s3tvr.live.messages import SpeechSegment, Transcript, UttInfo
    from s3tvr.live.talk import DetectingAsrStage

    asr = FakeAsr(FakeAsrConfig(delays=[0.0], languages=["es", "en"], text="hello"), "es", "en")
    voices = {"es": "the Spanish speaker's voice", "en": "the English speaker's voice"}
    stage = DetectingAsrStage(asr, ("es", "en"), voices)
    for utt_id, spoken, into in ((0, "es", "en"), (1, "en", "es")):
        utt = UttInfo(utt_id, "es", "en", 0, 1, 0, 0)
        (heard,) = stage.process(SpeechSegment(utt, np.zeros(16000, np.float32), np.zeros(0, np.float32)))
        assert heard == Transcript(utt, "hello", spoken) and (utt.src_lang, utt.tgt_lang) == (spoken, into)
        assert (utt.src_text, utt.tgt_text) == ("hello", "") and utt.voice == voices[spoken]


def test_a_talk_server_holds_a_conversation_and_names_each_utterances_direction(data, tmp_path):
    """``s3tvr serve --talk``: a client streams the conversation; the ready frame names the two
    languages, each utterance event its direction, alternating as scripted; another pair is refused."""
    import asyncio

    from s3tvr.serve import client

    wav = tmp_path / "conversation.wav"
    conversation(data, wav)
    port = free_port()
    with serving("--config", "fake", "--talk", "--from", "es", "--to", "en", "--set", "asr.languages=[es, en]",
                 "--port", port, log=tmp_path / "serve.log", timeout=60):
        url = f"ws://127.0.0.1:{port}/ws"
        events: list[dict] = []
        result = asyncio.run(client.stream_file(url, load_audio(wav), "en", "es", realtime=False, on_event=events.append))
        refused = asyncio.run(client.stream_file(url, load_audio(wav)[:16000], "es", "fr", realtime=False, check=False))
    assert events[0]["type"] == "ready" and events[0]["talk"] == ["es", "en"]
    utts = result.utterances
    assert len(utts) >= 3 and result.done["failed"] == 0
    for u in utts:
        spoken = "es" if u["utt_id"] % 2 == 0 else "en"
        assert (u["src_lang"], u["tgt_lang"]) == (spoken, {"es": "en", "en": "es"}[spoken])
        assert u["tgt_text"].startswith(f"[{u['tgt_lang']}]")
    assert refused.close_code == 4400 and "conversations between es and en" in refused.close_reason
