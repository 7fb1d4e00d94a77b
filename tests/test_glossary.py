"""The glossary (--glossary FILE, docs/glossary.md): read and checked up front, and acting in every
stage: the ASR biased towards its terms, the translation keeping to them (the LLM told them,
Apertium behind placeholders), the TTS saying them as respelt, and the log counting them."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from s3tvr.backends import registry
from s3tvr.backends.tts import piper
from s3tvr.config import BackendSection
from s3tvr.errors import InputError
from s3tvr.latency.record import UtteranceRecord, read_log
from s3tvr.latency.report import format_table, summarize
from s3tvr.live.messages import Translation, UttInfo
from s3tvr.live.stages import TtsStage
from s3tvr.text import glossary
from s3tvr.weights import bundled

from conftest import DATA, manifest, one_line_error, s3tvr, s3tvr_cmd

needs_apertium = pytest.mark.skipif(shutil.which("apertium") is None, reason="Debian's apertium is not installed")

CSV = "source,target,pronunciation,keep\nponencia,keynote,,\nAna Lucía,,,yes\nNginx,Nginx,engine x,\n"
YAML = """\
- source: ponencia
  target: keynote
- source: Ana Lucía
  keep: yes
- {source: Nginx, target: Nginx, pronunciation: engine x}
"""
# fleurs-es-002: "... no todos pudieron acceder al funeral en la Plaza de San Pedro." A rendering no
# translator makes by itself (the LLM keeps the Spanish, Apertium writes "the square of San Pedro"),
# and a respelling an English voice says so that Whisper hears the Italian.
SQUARE = "source,target,pronunciation,keep\nPlaza de San Pedro,Piazza San Pietro,Pee-ahtsa San Pee-etro,\n"


def test_csv_and_yaml_give_the_same_terms(tmp_path):
    (tmp_path / "g.csv").write_text(CSV)
    (tmp_path / "g.yaml").write_text(YAML)
    from_csv, from_yaml = glossary.load(tmp_path / "g.csv"), glossary.load(tmp_path / "g.yaml")
    assert from_csv.terms == from_yaml.terms
    assert from_csv.terms[1] == glossary.Term("Ana Lucía", "Ana Lucía", "", keep=True)
    assert from_csv.terms[2].pronunciation == "engine x"


def test_terms_are_found_as_whole_words_case_and_accent_blind_the_longest_first():
    g = glossary.parse("source,target\nponencia,keynote\nla ponencia larga,the long talk\nLucía,Lucy\n", "g.csv")
    text = "La PONÉNCIA de lucia; la ponencia larga. Ponencias y Lucíano no."
    found = [(text[f.start:f.end], f.term.target) for f in g.found(text)]
    assert found == [("PONÉNCIA", "keynote"), ("lucia", "Lucy"), ("la ponencia larga", "the long talk")]


def test_placeholders_go_back_as_the_terms_and_a_copied_term_is_replaced():
    g = glossary.parse(CSV, "g.csv")
    source = "La ponencia de Ana Lucía sobre Nginx."
    asked, terms = g.protect(source)
    assert "ponencia" not in asked and "Ana" not in asked and asked.count("ZXQ") == 3
    checked = g.enforce(source, asked.replace("La", "The").replace("de", "by").replace("sobre", "on"), terms)
    assert checked == glossary.Checked("The keynote by Ana Lucía on Nginx.", 3)
    copied = g.enforce(source, "The ponencia of Ana Lucía.")  # a translator that left a term untranslated
    assert copied.text == "The keynote of Ana Lucía." and copied.applied == 2 and "Nginx" in copied.note


@pytest.mark.parametrize("text, words", [
    ("source,target\n,keynote\n", ["line 2", "empty source"]),
    ("source,target,colour\nponencia,keynote,red\n", ["line 1", "unknown column 'colour'", "source,target,pronunciation,keep"]),
    ("source,target\nponencia,keynote\n\nPonéncia,talk\n", ["line 4", "again (first on line 2)"]),
    ("source,target,keep\nponencia,keynote,maybe\n", ["line 2", "keep is 'maybe'", "true, yes, 1"]),
    ("source,target\nponencia,\n", ["line 2", "no target", "keep=yes"]),
    ("source,target,keep\nAna,Anne,yes\n", ["line 2", "keep leaves"]),
    ("source,target\nponencia,keynote,extra\n", ["line 2", "3 fields"]),
    ("source,target\n" + "x" * 2000 + ",y\n", ["line 2", "at most 1000"]),
    ("source,target\n" + "".join(f"w{i},t{i}\n" for i in range(2001)), ["line 2002", "more than 2000 terms"]),
    (b"source,target\nponencia,keyn\xff\n", ["line 2", "not UTF-8"]),
    ("target\nkeynote\n", ["line 1", "no source column"]),
])
def test_a_broken_csv_is_one_line_naming_the_line(text, words):
    with pytest.raises(InputError) as caught:
        glossary.parse(text, "g.csv")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("glossary g.csv")
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("text, words", [
    ("source: ponencia\ntarget: keynote\n", ["line 1", "not a list"]),
    ("- source: ponencia\n  target: keynote\n  colour: red\n", ["line 3", "unknown key 'colour'"]),
    ("- source: ponencia\n  target: [keynote]\n", ["line 2", "must be text"]),
    ("- ponencia\n", ["line 1", "a term is a mapping"]),
    ("- source: a\n  target: b\n- source: [\n", ["not YAML"]),
    ("- source: ponencia\n  target: keynote\n- source: PONENCIA\n  target: talk\n", ["line 3", "again"]),
])
def test_a_broken_yaml_is_one_line_naming_the_line(text, words):
    with pytest.raises(InputError) as caught:
        glossary.parse(text, "g.yaml", yaml=True)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_a_broken_glossary_stops_each_command_before_any_model_loads(tmp_path, data):
    bad = tmp_path / "g.csv"
    bad.write_text("source,target,keep\nponencia,keynote,\nCarpanedo,,perhaps\n")
    clip = data / "fleurs-es-004.ogg"
    for command in (("run", "es", "--input", clip), ("talk", "es", "en", "--input", clip),
                    ("dub", clip, "-o", tmp_path / "out.wav", "--to", "en"), ("serve", "--port", "0")):
        proc = s3tvr(*command, "--glossary", bad, timeout=60)
        one_line_error(proc, "g.csv line 3", "keep is 'perhaps'")
        assert "Loading" not in proc.stderr and "loaded" not in proc.stderr
    one_line_error(s3tvr("run", "es", "--input", clip, "--glossary", tmp_path / "none.csv"), "cannot read glossary")


def test_a_session_glossary_is_bounded():
    assert glossary.from_query("") is glossary.NO_GLOSSARY
    with pytest.raises(InputError, match="at most 4000"):
        glossary.from_query("source,target\n" + "a,b\n" * 2000)
    with pytest.raises(InputError, match="more than 50 terms"):
        glossary.from_query("source,target\n" + "".join(f"w{i},t{i}\n" for i in range(51)))
    # What a client sends is read back as the same terms, commas and all; past the bounds, one line.
    sent = glossary.parse('source,target,pronunciation,keep\n"Smith, Jones",Smith & Jones,smith and jones,\nAna Lucía,,,yes\n', "g.csv")
    assert glossary.from_query(sent.to_query()).terms == sent.terms
    with pytest.raises(InputError, match="51 terms; a session sends at most 50"):
        glossary.parse("source,target\n" + "".join(f"w{i},t{i}\n" for i in range(51)), "big.csv").to_query()


def test_the_log_counts_the_terms_applied_and_the_report_says_so(tmp_path, data):
    """The fake pipeline: its ASR hears the scripted text, its MT (no terms of its own) gets placeholders."""
    (tmp_path / "g.csv").write_text(CSV)
    log = tmp_path / "log.jsonl"
    proc = s3tvr("run", "es", "--config", "fake", "--input", data / "fleurs-es-002.ogg", "--fast", "--log", log,
                 "--output", tmp_path / "out.wav", "--glossary", tmp_path / "g.csv",
                 "--set", "asr.text=la ponencia de Ana Lucía sobre nginx {utt_id}")
    assert proc.returncode == 0, proc.stderr
    records = read_log(log)
    assert records and all(r.glossary_terms == 3 for r in records)
    assert all("keynote de Ana Lucía sobre Nginx" in r.tgt_text for r in records)  # the written form, not "engine x"
    report = s3tvr("report", log)
    assert f"es-en  {3 * len(records)} terms in {len(records)} of {len(records)} utterances" in report.stdout, report.stdout


def test_the_record_keeps_the_count_and_an_old_log_reads_as_none():
    utt = UttInfo(3, "es", "en", 0.0, 1.0, 1.0, 1.1, src_text="la ponencia", tgt_text="the keynote", glossary_terms=1)
    from s3tvr.latency.record import Clock

    rec = UtteranceRecord.from_utt(utt, Clock())
    line = json.loads(json.dumps(rec.to_json()))
    assert UtteranceRecord.from_json(line) == rec and line["glossary_terms"] == 1
    del line["glossary_terms"]
    assert UtteranceRecord.from_json(line).glossary_terms == 0
    assert "glossary" not in format_table(summarize([UtteranceRecord.from_json(line)]))
    with pytest.raises(ValueError, match="glossary_terms"):
        UtteranceRecord.from_json({**line, "glossary_terms": "3"})


class HeardPiper(piper.Backend):
    """Piper, keeping the phonemes of each text it is asked to say."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.phonemes: list[str] = []

    def speak(self, text, *args, **kwargs):
        self.phonemes.append(" ".join(" ".join(s) for s in self.voice.phonemize(text)))
        yield from super().speak(text, *args, **kwargs)


def test_a_pronunciation_changes_the_phonemes_the_tts_gets_but_not_the_caption():
    tts = HeardPiper(piper.Config(), "es", "en")
    tts.setup()
    stage = TtsStage(tts)
    said = "We serve it with Nginx."
    for words in (None, glossary.parse(CSV, "g.csv")):
        utt = UttInfo(0, "es", "en", 0.0, 1.0, 1.0, 1.0, tgt_text=said, glossary=words)
        assert list(stage.process(Translation(utt, said)))
        assert utt.tgt_text == said
    plain, respelt = tts.phonemes
    assert plain != respelt
    assert tts.phonemes[1] == " ".join(" ".join(s) for s in tts.voice.phonemize("We serve it with engine x."))


@needs_apertium
def test_a_name_marked_keep_survives_apertium_and_terms_go_through_its_placeholders():
    mt = registry.create("mt", BackendSection("apertium"), src_lang="es", tgt_lang="en")
    mt.setup()
    try:
        text = "Rosa Blanca presentó la ponencia en Casa Blanca."
        words = glossary.parse("source,target,keep\nRosa Blanca,,yes\nCasa Blanca,,yes\nponencia,keynote,\n", "g.csv")
        plain = mt.translate_text(text)
        assert "Casa Blanca" not in plain  # Apertium translates the name's words ("home Blanca")
        kept = mt.translate_text_with(text, words)
        assert "Rosa Blanca" in kept.text and "Casa Blanca" in kept.text and "keynote" in kept.text, kept
        assert kept.applied == 3 and not kept.note
        pieces = list(mt.translate_with(text, words))  # the live path: the translation, then the count
        assert pieces[0].text == kept.text and pieces[-1].terms == 3
    finally:
        mt.cleanup()


def test_the_prompt_names_the_terms_found_in_the_sentence():
    from s3tvr.backends.mt import llm_text

    g = glossary.parse(CSV, "g.csv")
    text = "La ponencia de Ana Lucía."
    prompt = llm_text.prompt(text, "es", "en", terms=g.prompt_lines(text))
    system = prompt.split("<|im_end|>")[0]
    assert "ponencia -> keynote" in system and "Ana Lucía -> Ana Lucía (keep it as written)" in system
    assert "Nginx" not in prompt  # only the terms the sentence holds
    assert prompt.startswith(llm_text.prompt(text, "es", "en").split("<|im_end|>")[0])  # the system turn's start unchanged


# -- on real speech ----------------------------------------------------------------------------


def _translate(tmp_path, clip: str, mt: str, glossary_text: str = "") -> tuple[UtteranceRecord, str]:
    """One clip through s3tvr run (Whisper base, ``mt``, Piper): its record, and the output WAV's path."""
    out, log = tmp_path / f"{mt}-{bool(glossary_text)}.wav", tmp_path / f"{mt}-{bool(glossary_text)}.jsonl"
    extra = ["--set", "mt.pace_s=0", "--set", "mt.late_s=0"] if mt == "llm" else []
    if glossary_text:
        (tmp_path / "g.csv").write_text(glossary_text)
        extra += ["--glossary", str(tmp_path / "g.csv")]
    proc = subprocess.run([*s3tvr_cmd(), "run", "es", "--input", str(DATA / clip), "--fast", "--output", str(out),
                           "--log", str(log), "--set", f"mt={mt}", *extra], capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr
    records = read_log(log)
    assert len(records) == 1, records
    return records[0], str(out)


def _hear(path: str) -> str:
    import faster_whisper

    from s3tvr.audio.decode import load_audio

    listener = faster_whisper.WhisperModel(str(bundled.whisper_tiny_en()), device="cpu", compute_type="int8")
    segments, _ = listener.transcribe(load_audio(path), language="en", beam_size=1, condition_on_previous_text=False)
    return " ".join(s.text.strip() for s in segments).lower()


@pytest.mark.slow
@pytest.mark.parametrize("mt", ["llm", pytest.param("apertium", marks=needs_apertium)])
def test_on_real_speech_the_chosen_rendering_is_said_and_heard_only_with_the_glossary(tmp_path, mt):
    assert "Plaza de San Pedro" in manifest()["fleurs-es-002.ogg"]["ref_spa"]
    without, plain_wav = _translate(tmp_path, "fleurs-es-002.ogg", mt)
    assert "piazza" not in without.tgt_text.lower() and without.glossary_terms == 0
    assert "piazza" not in _hear(plain_wav)
    with_it, wav = _translate(tmp_path, "fleurs-es-002.ogg", mt, SQUARE)
    assert "Piazza San Pietro" in with_it.tgt_text and with_it.glossary_terms == 1, with_it
    heard = _hear(wav)  # the respelling, said by Piper, is what Whisper takes for the Italian
    assert "piazza" in heard or "pietro" in heard, heard


@pytest.mark.slow
@needs_apertium
def test_on_real_speech_a_kept_name_is_recognised_and_survives(tmp_path):
    """fleurs-es-004 names the skier Carpanedo, which Whisper base hears as another name unless told."""
    with_it, _ = _translate(tmp_path, "fleurs-es-004.ogg", "apertium", "source,target,keep\nCarpanedo,,yes\n")
    assert "Carpanedo" in with_it.src_text and "Carpanedo" in with_it.tgt_text, with_it
    assert with_it.glossary_terms == 1
    assert np.isfinite(with_it.latency_s)


# -- per session in serve ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def served():
    """A server over the fake backends whose default glossary renders the fake ASR's "utterance"."""
    from test_serve import Running

    running = Running(token="s3cret", glossary=glossary.parse("source,target\nutterance,Äußerung\n", "server.csv"))
    yield running
    running.stop()


def _session(served, speech, own=None):
    from urllib.parse import quote

    from test_serve import exchange, run

    q = "from=es&to=en&token=s3cret" + (f"&glossary={quote(own)}" if own is not None else "")
    pcm = (np.clip(speech, -1, 1) * 32767).astype("<i2").tobytes()
    frames = [pcm[i:i + 32000] for i in range(0, len(pcm), 32000)] + [json.dumps({"type": "end"})]
    return run(exchange(served.port, q, send=frames, pause=0.05))


def test_each_session_has_its_glossary_the_server_s_or_its_own(served, data):
    from s3tvr.audio.decode import load_audio

    speech = load_audio(data / "fleurs-es-002.ogg")
    got = _session(served, speech)
    said = [e["tgt_text"] for e in got.events if e["type"] == "utterance"]
    assert got.code == 1000 and said and all("Äußerung" in t for t in said), said
    own = _session(served, speech, "source,target\nlasting,enduring\n")
    said = [e["tgt_text"] for e in own.events if e["type"] == "utterance"]
    assert own.code == 1000 and said and all("enduring" in t and "Äußerung" not in t for t in said), said
    records = [e["record"] for e in own.events if e["type"] == "latency"]
    assert records and all(r["glossary_terms"] == 1 for r in records)


def test_the_client_sends_its_own_glossary(served, data, tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text("- source: lasting\n  target: enduring\n")
    proc = s3tvr("client", f"ws://127.0.0.1:{served.port}/ws", "--from", "es", "--to", "en", "--token", "s3cret",
                 "--input", data / "fleurs-es-002.ogg", "--output", tmp_path / "out.wav", "--glossary", own, timeout=120)
    said = [line for line in proc.stdout.splitlines() if "=>" in line]
    assert proc.returncode == 0 and said and all("enduring" in line and "Äußerung" not in line for line in said), proc.stdout
    # Within a session's 4000 characters, too long for its address (a CJK character is 9 encoded): one line, before connecting.
    (tmp_path / "long.csv").write_text("source,target\n" + "".join(f"{'語' * 20}{i},{'訳' * 20}{i}\n" for i in range(50)))
    one_line_error(s3tvr("client", "ws://127.0.0.1:9/ws", "--from", "es", "--to", "en", "--input", data / "fleurs-es-002.ogg",
                         "--glossary", tmp_path / "long.csv"), "at most 8000", "serve --glossary")


@pytest.mark.parametrize("own, words", [
    ("source,target\nponencia,keynote,extra\n", ["line 2", "3 fields"]),
    ("source,colour\nponencia,red\n", ["line 1", "unknown column"]),
    ("source,target\n" + "abcdefghijklmnop,qrstuvwxyzabcdef\n" * 120, ["4094 characters", "at most 4000"]),
])
def test_a_broken_session_glossary_is_refused_with_4400_naming_the_problem(served, own, words):
    from urllib.parse import quote

    from test_serve import exchange, refused, run

    got = run(exchange(served.port, f"from=es&to=en&token=s3cret&glossary={quote(own)}", send=[b"\0\0"]))
    refused(got, 4400, *words)
    assert served.server.active == 0


@pytest.mark.slow
@needs_apertium
def test_a_dub_s_subtitles_carry_the_chosen_rendering(tmp_path):
    (tmp_path / "g.csv").write_text(SQUARE)
    proc = s3tvr("dub", DATA / "fleurs-es-002.ogg", "--from", "es", "--to", "en", "-o", tmp_path / "out.wav", "--subtitles-only",
                 "--set", "mt=apertium", "--glossary", tmp_path / "g.csv", timeout=400)
    assert proc.returncode == 0, proc.stderr
    subtitles = (tmp_path / "out.en.srt").read_text()
    assert "Piazza San Pietro" in subtitles and "San Pedro" not in subtitles, subtitles
