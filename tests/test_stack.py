"""The model stack (NeMo ASR, NLLB/Marian MT, XTTS v2) through the code users run, on tiny models
of the same architectures with random weights (tests/tiny_models.py): loading, inference,
streaming, voice caching, sentence limits, the CLI end to end, and the errors users meet."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from s3tvr.audio.decode import load_audio
from s3tvr.backends import registry
from s3tvr.config import BackendSection
from s3tvr.errors import InputError, SetupError
from s3tvr.latency.record import read_log
from s3tvr.live.messages import SpeechSegment, Transcript, UttInfo
from s3tvr.live.stages import AsrStage, MtStage

from conftest import DATA, s3tvr_cmd

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def utt(i: int = 0, src: str = "en", tgt: str = "es") -> UttInfo:
    return UttInfo(i, src, tgt, 0.0, 1.0, 0.0, 0.0)


def make(kind: str, backend: str, src: str = "en", tgt: str = "es", **options):
    model = registry.create(kind, BackendSection(backend, options), src_lang=src, tgt_lang=tgt, device="cpu", dtype="auto")
    model.setup()
    return model


# -- NeMo ---------------------------------------------------------------------------------------

def test_nemo_transcribes_an_array_and_restores_case(tiny):
    asr = make("asr", "nemo", model=str(tiny.nemo))
    audio = load_audio(DATA / "fleurs-en-004.ogg")
    # The tiny model emits one piece; its vocabulary is lowercase and unpunctuated, so the
    # sentence comes back capitalised with a full stop, as Parakeet CTC's would.
    expected = tiny.nemo_text.strip()
    assert asr.transcribe(audio, "en") == expected[:1].upper() + expected[1:] + "."
    assert asr.restore


@pytest.mark.parametrize("decoder", ["ctc", "rnnt"])
def test_nemo_hybrid_model_decodes_with_the_chosen_decoder(tiny, decoder):
    asr = make("asr", "nemo", src="es", tgt="en", model=str(tiny.nemo_hybrid), decoder=decoder)
    assert type(asr.model).__name__ == "EncDecHybridRNNTCTCBPEModel" and asr.model.cur_decoder == decoder
    audio = load_audio(DATA / "fleurs-es-002.ogg")[:16000 * 2]
    text = asr.transcribe(audio, "es")
    u = utt(0, "es", "en")
    out = list(AsrStage(asr).process(SpeechSegment(u, audio, np.zeros(0, np.float32))))
    # Through its stage: the same text, as the source's (or, random weights hearing nothing, skipped).
    assert [(t.text, t.language) for t in out] == ([(text, "es")] if text else []) and u.src_text == text
    assert u.skipped == (None if text else "no words recognised")


def test_nemo_case_restoration_rules():
    from s3tvr.backends.asr.nemo import restore_case

    assert restore_case("i think i'm late", "en") == "I think I'm late."
    assert restore_case("how are you", "en") == "How are you?"
    assert restore_case("hola a todos", "es") == "Hola a todos."
    assert restore_case("Already done.", "en") == "Already done."


def test_nemo_errors_name_the_fix(tmp_path):
    with pytest.raises(SetupError, match="download asr-en"):
        registry.create("asr", BackendSection("nemo", {"model": str(tmp_path / "missing.nemo")}),
                        src_lang="en", tgt_lang="es")
    with pytest.raises(InputError, match="no default NeMo model for ru"):
        registry.create("asr", BackendSection("nemo", {}), src_lang="ru", tgt_lang="en")
    with pytest.raises(InputError, match="decoder must be ctc or rnnt"):
        registry.create("asr", BackendSection("nemo", {"decoder": "beam"}), src_lang="en", tgt_lang="es")


# -- MT -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["nllb", "marian"])
def test_mt_translates_every_sentence_in_one_batch(tiny, backend, monkeypatch):
    mt = make("mt", backend, model=str(getattr(tiny, backend)))
    calls = []
    generate = mt.model.generate

    def spy(**kwargs):
        calls.append((kwargs["input_ids"].shape, kwargs["max_new_tokens"]))
        return generate(**kwargs)

    monkeypatch.setattr(mt.model, "generate", spy)
    text = "The cabbage juice changes color. Many people don't think about them as dinosaurs! Is it acidic?"
    u = utt()
    out = list(MtStage(mt).process(Transcript(u, text, "en")))
    assert len(out) == 1 and out[0].text.strip() and u.tgt_text == out[0].text
    (shape, max_new), = calls
    assert shape[0] == 3  # three sentences, one generate() call
    assert max_new >= 2 * shape[1]  # the output may be twice the input: never cut short


@pytest.mark.parametrize("backend", ["nllb", "marian"])
def test_mt_stops_at_the_end_of_each_sentence(tiny, backend, monkeypatch):
    """Generation ends at end-of-sentence, before the length cap, for each sentence of a batch of
    different lengths (padded), and nothing after the end leaks into the text."""
    mt = make("mt", backend, src="en", tgt="es", model=str(getattr(tiny, backend)))
    outputs = []
    generate = mt.model.generate
    monkeypatch.setattr(mt.model, "generate", lambda **kw: outputs.append((kw["max_new_tokens"], generate(**kw))) or outputs[-1][1])
    text = "Hello. The cabbage juice changes color when it is mixed with an acid or a base, as we saw."
    out = mt.translate_text(text)
    (cap, ids), = outputs
    eos = mt.tokenizer.eos_token_id
    for row in ids.tolist():
        assert eos in row[1:] and row[1:].index(eos) < cap  # stopped by itself
    assert out.strip() and "</s>" not in out


def test_nllb_uses_the_language_codes(tiny, monkeypatch):
    mt = make("mt", "nllb", src="es", tgt="en", model=str(tiny.nllb))
    assert mt.tokenizer.src_lang == "spa_Latn"
    assert mt.generate_kwargs()["forced_bos_token_id"] == mt.tokenizer.convert_tokens_to_ids("eng_Latn")
    enc = mt.tokenizer(["Hola."])
    assert enc["input_ids"][0][0] == mt.tokenizer.convert_tokens_to_ids("spa_Latn")


def test_marian_multi_target_models_get_their_target_token(tmp_path):
    """Tatoeba-era multi-target models name targets in ISO 639-3 with a script (>>cmn_Hans<<):
    the target's token is found, and a model with no token for the target is refused, never
    left to translate into a language of its choosing."""
    from tiny_models import build_marian

    model = build_marian(tmp_path, tags=(">>spa<<", ">>cmn_Hans<<", ">>rus<<"))
    mt = make("mt", "marian", src="en", tgt="zh", model=str(model))
    assert mt.tag == ">>cmn_Hans<<"
    calls = []
    generate = mt.model.generate
    mt.model.generate = lambda **kw: calls.append(kw["input_ids"][:, 0].tolist()) or generate(**kw)
    assert len(mt.translate(["Hello.", "How are you?"])) == 2
    assert calls == [[mt.tokenizer.convert_tokens_to_ids(">>cmn_Hans<<")] * 2]
    assert make("mt", "marian", src="en", tgt="es", model=str(model)).tag == ">>spa<<"
    with pytest.raises(SetupError, match="has no target token for de .*>>cmn_Hans<<"):
        make("mt", "marian", src="en", tgt="de", model=str(model))


def test_mt_errors_name_the_fix(tmp_path):
    with pytest.raises(SetupError, match="no config.json"):
        registry.create("mt", BackendSection("nllb", {"model": str(tmp_path)}), src_lang="en", tgt_lang="es")
    with pytest.raises(InputError, match="NLLB has no code for 'xx'"):
        registry.create("mt", BackendSection("nllb", {}), src_lang="en", tgt_lang="xx")


# -- XTTS ---------------------------------------------------------------------------------------

def test_xtts_streams_in_the_voice_of_reference_clips(tiny, tmp_path, monkeypatch):
    clip = DATA / "fleurs-es-002.ogg"
    tts = make("tts", "xtts", tgt="es", model_dir=str(tiny.xtts), voice_cache=str(tmp_path), seed=3)
    assert tts.languages >= {"en", "es", "ru", "zh"} and tts.sample_rate == 24000
    assert tts.clones_voice and tts.speaking_rate
    voice = tts.new_voice([clip])
    chunks = list(tts.speak("Hola a todos. ¿Qué tal?", voice=voice))
    assert len(chunks) >= 2 and all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    assert sum(len(c) for c in chunks) > 0.5 * 24000
    # The same seed, text and voice: the same audio.
    again = list(tts.speak("Hola a todos. ¿Qué tal?", voice=voice))
    assert np.allclose(np.concatenate(chunks), np.concatenate(again), atol=1e-4)  # within what a listener hears
    # The voice was computed once and cached by the clips' content; a new run loads it.
    cached = list(tmp_path.glob("clips-*.pt"))
    assert len(cached) == 1
    second = make("tts", "xtts", tgt="es", model_dir=str(tiny.xtts), voice_cache=str(tmp_path))
    computed = []
    condition = type(voice)._condition
    monkeypatch.setattr(type(voice), "_condition", lambda self, clips: computed.append(clips) or condition(self, clips))
    again = second.new_voice([clip])
    assert again.next_at is None and again.cond is not None and not computed
    # No voice given: XTTS says so rather than speaking in an arbitrary one.
    with pytest.raises(InputError, match="no voice"):
        list(tts.speak("Hola."))


def test_xtts_learns_the_session_voice_without_recomputing_per_utterance(tiny, tmp_path, monkeypatch):
    from s3tvr.backends.tts.xtts import Voice

    tts = make("tts", "xtts", tgt="en", model_dir=str(tiny.xtts), voice_cache=str(tmp_path), learn_s=20)
    voice = tts.new_voice(speaker="ana")
    computed = []
    condition = Voice._condition
    monkeypatch.setattr(Voice, "_condition", lambda self, clips: computed.append(sum(map(len, clips))) or condition(self, clips))
    speech = load_audio(DATA / "fleurs-en-004.ogg")  # 4.3 s
    for _ in range(8):
        assert list(tts.speak("Hello.", voice=voice, speech=speech))
    # Heard 4.3, 8.6, … 34 s: the voice is computed at 4.3, 8.6 and 17.3 s, and at 20 s (the
    # cap) for the last time; never again after that.
    assert len(computed) == 4
    assert len(list(tmp_path.glob("speaker-ana-*.pt"))) == 1


def test_xtts_keeps_sentences_under_the_character_limit(tiny, monkeypatch):
    tts = make("tts", "xtts", tgt="es", model_dir=str(tiny.xtts))
    voice = tts.new_voice([DATA / "fleurs-es-002.ogg"])
    seen = []
    stream = tts.model.inference_stream
    monkeypatch.setattr(tts.model, "inference_stream", lambda text, *a, **k: seen.append(text) or stream(text, *a, **k))
    long = " ".join(["El uso adecuado de los blogs puede empoderar a los alumnos, para que sean más analíticos"] * 4) + "."
    list(tts.speak(long, voice=voice))
    assert len(seen) >= 2 and all(len(s) <= 239 for s in seen)
    assert " ".join(seen).split() == long.split()  # nothing dropped


def test_xtts_errors_name_the_fix(tiny, tmp_path):
    with pytest.raises(SetupError, match="xtts_v2_download.py"):
        registry.create("tts", BackendSection("xtts", {"model_dir": str(tmp_path)}), src_lang="en", tgt_lang="es")
    with pytest.raises(InputError, match="voice clip .* not found"):
        make("tts", "xtts", model_dir=str(tiny.xtts)).new_voice([tmp_path / "nope.wav"])
    with pytest.raises(InputError, match="--deepspeed needs --device cuda"):
        registry.create("tts", BackendSection("xtts", {"model_dir": str(tiny.xtts), "deepspeed": True}),
                        src_lang="en", tgt_lang="es")


def test_xtts_reads_the_real_checkpoint_format_without_rewriting_it(tiny, tmp_path, monkeypatch):
    """The real model.pth holds a pickled XttsConfig, as the tiny one does; coqui-tts would convert
    it and save the 1.8 GB file back in place on first load, after reading it twice (its first,
    refused attempt reads every tensor before the config)."""
    import hashlib
    import shutil

    import torch
    from TTS.tts.configs.xtts_config import XttsConfig

    folder = tmp_path / "xtts"
    shutil.copytree(tiny.xtts, folder)
    pth = folder / "model.pth"
    assert isinstance(torch.load(pth, map_location="cpu", weights_only=False)["config"], XttsConfig)
    before = (hashlib.sha256(pth.read_bytes()).hexdigest(), pth.stat().st_mtime_ns)
    reads, load = [], torch.load  # a path or, through fsspec, an open file

    def counting_load(f, *args, **kwargs):
        reads.append(Path(str(getattr(f, "path", f))).name)
        return load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    tts = make("tts", "xtts", tgt="es", model_dir=str(folder), voice_cache=str(tmp_path / "voices"))
    assert reads.count("model.pth") == 1
    monkeypatch.setattr(torch, "load", load)
    assert list(tts.speak("Hola.", voice=tts.new_voice([DATA / "fleurs-es-002.ogg"])))
    assert (hashlib.sha256(pth.read_bytes()).hexdigest(), pth.stat().st_mtime_ns) == before


@pytest.mark.parametrize("lang,text", [("zh", "你好，世界。我们明天见。"), ("ja", "こんにちは、世界。また明日。"),
                                       ("ko", "안녕하세요. 내일 봐요."), ("hi", "मेरे पास 12 आम और १५ केले हैं, कीमत 3.5 रुपये।")])
def test_xtts_speaks_languages_with_their_own_text_cleaning(tiny, tmp_path, lang, text, monkeypatch):
    """Chinese and Japanese go through romanisers the xtts extra installs; Hindi digits, which
    num2words cannot spell, are spelled first; each text starts with the language token the real
    vocabulary has ("[zh-cn]" for Chinese)."""
    from s3tvr.languages import XTTS_CODES

    tts = make("tts", "xtts", src="en", tgt=lang, model_dir=str(tiny.xtts), voice_cache=str(tmp_path), seed=1)
    encoded = []
    encode = tts.model.tokenizer.encode
    monkeypatch.setattr(tts.model.tokenizer, "encode", lambda txt, lang: encoded.append(encode(txt, lang)) or encoded[-1])
    voice = tts.new_voice([DATA / "fleurs-en-004.ogg"])
    chunks = list(tts.speak(text, voice=voice))
    assert chunks and sum(len(c) for c in chunks) > 0
    token = tts.model.tokenizer.tokenizer.token_to_id(f"[{XTTS_CODES[lang]}]")
    assert token is not None and all(ids[0] == token for ids in encoded)


def test_xtts_hindi_numbers_are_spelled_in_hindi():
    from s3tvr.backends.tts.xtts import spell_hindi_numbers

    assert spell_hindi_numbers("मेरे पास 12 आम हैं") == "मेरे पास बारह आम हैं"
    assert spell_hindi_numbers("१५ केले") == "पन्द्रह केले"  # Devanagari digits too
    assert spell_hindi_numbers("3.5 रुपये") == "तीन दशमलव पाँच रुपये"
    assert spell_hindi_numbers("1,00,000 लोग") == "एक लाख लोग"  # Indian digit grouping


def test_xtts_without_a_romaniser_says_what_to_install(tiny, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cutlet" else find_spec(name, *a))
    with pytest.raises(SetupError, match=r"XTTS needs cutlet to speak ja: pip install cutlet 'fugashi\[unidic-lite\]'"):
        registry.create("tts", BackendSection("xtts", {"model_dir": str(tiny.xtts)}), src_lang="en", tgt_lang="ja")


def test_xtts_follows_the_checkpoint_config(tiny, tmp_path, monkeypatch):
    """Sampling and conditioning come from config.json (XTTS v2's: repetition_penalty 5.0, 4 s
    conditioning chunks, each reference cut to max_ref_len), not coqui-tts's function defaults."""
    tts = make("tts", "xtts", tgt="es", model_dir=str(tiny.xtts), voice_cache=str(tmp_path))
    config = tts.xtts_config
    assert (config.repetition_penalty, config.gpt_cond_chunk_len, config.max_ref_len) == (5.0, 4, 30)
    heard, latents_args = [], []
    embed, latents = tts.model.get_speaker_embedding, tts.model.get_gpt_cond_latents
    monkeypatch.setattr(tts.model, "get_speaker_embedding", lambda audio, sr: heard.append(audio.shape[-1] / sr) or embed(audio, sr))
    monkeypatch.setattr(tts.model, "get_gpt_cond_latents", lambda audio, sr, length, chunk_length:
                        latents_args.append((length, chunk_length)) or latents(audio, sr, length, chunk_length))
    long_clip = tmp_path / "long.wav"
    speech = load_audio(DATA / "fleurs-es-002.ogg", 22050)
    sf.write(long_clip, np.tile(speech, int(60 * 22050 / len(speech)) + 1)[: 60 * 22050], 22050)  # a 60 s recording
    voice = tts.new_voice([long_clip])
    assert heard == [30.0] and latents_args == [(30, 4)]
    kwargs = []
    stream = tts.model.inference_stream
    monkeypatch.setattr(tts.model, "inference_stream", lambda *a, **k: kwargs.append(k) or stream(*a, **k))
    list(tts.speak("Hola.", voice=voice))
    assert {k: kwargs[0][k] for k in ("repetition_penalty", "temperature", "top_k", "top_p", "length_penalty")} == {
        "repetition_penalty": 5.0, "temperature": 0.75, "top_k": config.top_k, "top_p": config.top_p,
        "length_penalty": config.length_penalty}
    louder = make("tts", "xtts", tgt="es", model_dir=str(tiny.xtts), temperature=0.5)
    assert louder.sampling()["temperature"] == 0.5  # a user's setting still rules


# -- the CLI, end to end ------------------------------------------------------------------------

# Both modes: in simultaneous mode each clause speaks in the voice learned from the speech heard so far.
@pytest.mark.parametrize("lang,target,clip,mode", [("en", "es", "fleurs-en-004.ogg", "sentence"),
                                                   ("es", "en", "fleurs-es-002.ogg", "simultaneous")])
def test_run_with_the_tiny_stack(tiny, tmp_path, lang, target, clip, mode):
    out, log = tmp_path / "out.wav", tmp_path / "latency.jsonl"
    cmd = s3tvr_cmd() + ["run", lang, "--input", str(DATA / clip), "--fast", "--device", "cpu", "--mode", mode,
                         "--set", f"asr.model={tiny.nemo}", "--set", f"mt.model={tiny.nllb}",
                         "--xtts-dir", str(tiny.xtts), "--seed", "1", "--output", str(out), "--log", str(log)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    audio, rate = sf.read(out)
    assert rate == 24000 and np.abs(audio).max() > 0.01
    records = read_log(log)
    assert records and all(r.error is None for r in records)
    spoken = [r for r in records if not r.skipped]  # simultaneous: not the empty clause that marks the end
    assert spoken and f"{mode} mode" in proc.stderr
    for r in spoken:
        assert r.src_lang == lang and r.tgt_lang == target and r.src_text and r.tgt_text
        assert {s: r.stages[s].backend for s in ("asr", "mt", "tts")} == {"asr": "nemo", "mt": "nllb", "tts": "xtts"}
        assert r.latency_s is not None and r.t_first_audio >= r.stages["tts"].first_out


def test_run_errors_are_one_line(tiny, tmp_path):
    def run(*args):
        proc = subprocess.run(s3tvr_cmd() + ["run", *args], capture_output=True, text=True, timeout=300, env=_env(tmp_path))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode in (2, 3) and "Traceback" not in proc.stderr, proc.stderr
        return lines[-1]

    clip = str(DATA / "fleurs-en-004.ogg")
    assert "no CUDA GPU" in run("en", "--input", clip, "--xtts-dir", str(tiny.xtts))  # the stack preset asks for cuda
    assert "xtts_v2_download.py" in run("en", "--input", clip, "--device", "cpu", "--xtts-dir", str(tmp_path))
    assert "need the xtts TTS" in run("es", "--input", clip, "--voice", clip)


def _env(tmp_path):
    import os

    return {**os.environ, "S3TVR_MODELS": str(tmp_path / "models"), "HOME": str(tmp_path)}
