"""One engine, several sessions at the same time: the models load once, and each session gets the
translation of its own input, in order, with a complete latency log (real offline models)."""

import threading

import pytest
import sacrebleu

from s3tvr import Engine, load_config
from s3tvr.audio.decode import load_audio
from s3tvr.weights import bundled

from conftest import manifest

pytestmark = pytest.mark.slow

faster_whisper = pytest.importorskip("faster_whisper")
CLIPS = ["fleurs-es-000.ogg", "fleurs-es-002.ogg"]


def hear(model, path) -> str:
    segments, _ = model.transcribe(load_audio(path), language="en", beam_size=1, condition_on_previous_text=False)
    return " ".join(s.text.strip() for s in segments).strip()


def test_two_sessions_at_once_on_one_engine_each_translate_their_own_clip(data, tmp_path, monkeypatch):
    from s3tvr.backends.asr.faster_whisper import Backend as Whisper
    from s3tvr.backends.mt.llm import Backend as Llm
    from s3tvr.backends.tts.piper import Backend as Piper

    setups = {"asr": 0, "mt": 0, "tts": 0}
    for cls, name in ((Whisper, "asr"), (Llm, "mt"), (Piper, "tts")):
        original = cls.setup
        monkeypatch.setattr(cls, "setup", lambda self, o=original, n=name: setups.__setitem__(n, setups[n] + 1) or o(self))
    # Real-time pace: the two clips are heard at the same time, as two speakers would be.
    engine = Engine(load_config("offline", src_lang="es", tgt_lang="en"))
    results, errors, started = {}, [], threading.Barrier(len(CLIPS))

    def run(clip):
        try:
            session = engine.session(input=str(data / clip), output=str(tmp_path / f"{clip}.wav"),
                                     log_path=str(tmp_path / f"{clip}.jsonl"))
            started.wait(timeout=120)
            results[clip] = session.run()
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    with engine:
        threads = [threading.Thread(target=run, args=(clip,)) for clip in CLIPS]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert not errors and set(results) == set(CLIPS), errors
    assert setups == {"asr": 1, "mt": 1, "tts": 1} and set(engine.loads) == {"vad", "asr", "mt", "tts"}

    listener = faster_whisper.WhisperModel(str(bundled.whisper_tiny_en()), device="cpu", compute_type="int8")
    refs = {clip: manifest()[clip]["ref_eng"] for clip in CLIPS}
    said = {clip: " ".join(r.tgt_text for r in results[clip].records) for clip in CLIPS}
    for clip, other in (CLIPS, CLIPS[::-1]):
        records = results[clip].records
        # In order and complete: ids count up from 0, each logged; each spoken and timed but those with
        # nothing to say (simultaneous mode, auto's choice where passes keep pace: an empty last clause,
        # or a tail dropped when the speaker went on).
        assert [r.utt_id for r in records] == list(range(len(records))) and records
        log_lines = (tmp_path / f"{clip}.jsonl").read_text().splitlines()
        assert len(log_lines) == len(records)
        spoken = [r for r in records if not r.skipped]
        assert spoken and all(r.error is None for r in records)
        for r in spoken:
            assert r.tgt_text and r.latency_s > 0 and r.t_play_end > r.t_first_audio
            assert {"asr", "mt", "tts"} <= set(r.stages)
        # Its text is the translation of its own clip, not of the other one (a margin rather than
        # a high score: Whisper base mishears names) ...
        own, crossed = (sacrebleu.sentence_chrf(said[clip], [refs[c]]).score for c in (clip, other))
        assert own > crossed + 5, (clip, said[clip], own, crossed)
        # ... and its output file speaks that text, none of the other session's.
        heard = hear(listener, tmp_path / f"{clip}.wav")
        own, crossed = (sacrebleu.sentence_chrf(heard, [said[c]]).score for c in (clip, other))
        assert own > 60 and own > crossed + 20, (clip, heard, said, own, crossed)
