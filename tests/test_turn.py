"""Smart Turn v3.2 in the segmenter, with the real model from the pipecat-ai wheel (setup.sh installs it):
a finished sentence ends after the short silence, a mid-sentence pause does not; the weights'
resolver, the features against pipecat's own extractor, the config ranges, the engine's loading."""

import importlib.util
import threading

import numpy as np
import pytest

from s3tvr import Engine, load_config
from s3tvr.audio.decode import load_audio
from s3tvr.config import VadConfig
from s3tvr.errors import InputError, SetupError
from s3tvr.live import turn
from s3tvr.live.messages import Block
from s3tvr.live.segmenter import WINDOW_S, Segmenter


@pytest.fixture(scope="module")
def model():
    """One Smart Turn for this file's tests: it is stateless."""
    return turn.load()


class Spy:
    """The model, remembering every probability it gave."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def probability(self, audio):
        p = self.model.probability(audio)
        self.calls.append(p)
        return p


def run(audio, spy=None, **kw):
    """Segments of ``audio`` and, for each, the silence (s) after its speech when it was released."""
    seg = Segmenter(VadConfig(**kw), "es", "en")
    seg.setup(turn=spy)
    out, waits = [], []
    for i in range(0, len(audio), 512):
        new = seg.push(Block(audio[i:i + 512], 0.0))
        waits += [seg._index * WINDOW_S - s.utt.seg_end_s for s in new]
        out += new
    return out + seg.flush(), waits


@pytest.mark.parametrize("clip", ["fleurs-es-004.ogg", "fleurs-en-004.ogg"])
def test_a_finished_sentence_ends_after_the_short_silence(data, clip, model):
    audio = np.concatenate([load_audio(data / clip), np.zeros(16000, np.float32)])  # the sentence, then 1 s of silence
    spy = Spy(model)
    segs, waits = run(audio, spy, turn=True)
    assert len(segs) == 1 and len(waits) == 1  # released by the pause, not by the end of the input
    assert spy.calls and spy.calls[-1] > 0.9  # the model: finished
    assert waits[0] == pytest.approx(VadConfig.turn_silence_ms / 1000, abs=WINDOW_S)
    _, fixed = run(audio)  # today's fixed endpoint waits 500 ms
    assert fixed[0] - waits[0] > 0.15


def test_a_mid_sentence_pause_does_not_end_the_utterance(data, model):
    # "... hablamos muchas veces de la… [0.86 s] la factibilidad o lo bueno": the fixed 500 ms endpoint cuts it in two.
    audio = load_audio(data / "silero_es_pause.flac")
    fixed, _ = run(audio)
    assert len(fixed) == 2
    spy = Spy(model)
    segs, _ = run(audio, spy, turn=True)
    assert len(segs) == 1
    assert segs[0].utt.seg_start_s < fixed[0].utt.seg_end_s < fixed[1].utt.seg_start_s < segs[0].utt.seg_end_s
    assert min(spy.calls) < 0.1  # asked at the pause: not finished
    assert len(run(audio, turn=True, turn_max_ms=500)[0]) == 2  # the longer limit is what keeps it whole (its own model)


def test_a_long_utterance_still_ends_at_its_next_breath(data, model):
    # 12 s of speech: past long_after_s, long_endpoint_ms (200 ms) ends it before the model would be asked (300 ms)
    audio = np.concatenate([load_audio(data / "fleurs-es-000.ogg"), np.zeros(16000, np.float32)])
    spy = Spy(model)
    segs, waits = run(audio, spy, turn=True)
    assert len(segs) == 1 and not spy.calls
    assert waits[0] == pytest.approx(VadConfig.long_endpoint_ms / 1000, abs=WINDOW_S)


def test_the_model_is_asked_once_per_pause(data, model):
    spy = Spy(model)
    segs, _ = run(load_audio(data / "silero_es_pause.flac"), spy, turn=True, turn_max_ms=3000)
    # pauses of 300 ms or more: one (the 0.86 s hesitation); the end of the input is not a pause
    assert len(segs) == 1 and len(spy.calls) == 1


def test_features_match_pipecats_own_extractor(data):
    # pipecat's numpy copy of transformers' WhisperFeatureExtractor, loaded from the wheel without importing pipecat
    path = turn.model_path().parents[1] / "_whisper_features.py"
    spec = importlib.util.spec_from_file_location("pipecat_whisper_features", path)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    audio = load_audio(data / "fleurs-es-000.ogg")
    padded = np.pad(audio, (turn.SECONDS * 16000 - len(audio), 0)) if len(audio) < turn.SECONDS * 16000 else audio[-128000:]
    ours = turn.features(audio)
    assert ours.shape == (80, 800) and ours.dtype == np.float32
    assert np.abs(ours - reference.compute_whisper_log_mel_features(padded)).max() < 1e-4


def test_probability_is_thread_safe(data, model):
    clips = [load_audio(data / c) for c in ("fleurs-es-000.ogg", "fleurs-en-004.ogg", "fleurs-es-002.ogg")]
    alone = [model.probability(c) for c in clips]
    together = [None] * len(clips)

    def one(i):
        together[i] = model.probability(clips[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(clips))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone


def test_missing_weights_name_the_fix(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)  # pipecat-ai not installed
    with pytest.raises(SetupError) as err:
        turn.model_path()
    message = str(err.value)
    assert "\n" not in message and "pip install --no-deps pipecat-ai==1.14.0" in message and "vad.turn=false" in message
    assert err.value.exit_code == 3


def test_a_pipecat_without_the_file_is_missing_weights_too(monkeypatch, tmp_path):
    (tmp_path / "pipecat").mkdir()
    (tmp_path / "pipecat" / "__init__.py").write_text("raise ImportError('pipecat must never be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert importlib.util.find_spec("pipecat").submodule_search_locations == [str(tmp_path / "pipecat")]
    with pytest.raises(SetupError, match="pipecat-ai"):
        turn.model_path()


@pytest.mark.parametrize("key, value, bounds", [
    ("turn_silence_ms", 10, "between 32 and 2000"), ("turn_silence_ms", 5000, "between 32 and 2000"),
    ("turn_threshold", 1.5, "between 0 and 1"), ("turn_threshold", -0.1, "between 0 and 1"), ("turn_threshold", ".nan", "between 0 and 1"),
    ("turn_max_ms", 0, "between 32 and 10000"), ("turn_max_ms", 20000, "between 32 and 10000"),
])
def test_config_ranges(key, value, bounds):
    with pytest.raises(InputError, match=f"vad.{key} must be {bounds}"):
        load_config("fake", [f"vad.{key}={value}"])


def test_config_defaults_and_overrides():
    vad = load_config("fake", ["vad.turn=true", "vad.turn_silence_ms=200", "vad.turn_max_ms=800", "vad.turn_threshold=0.7"]).vad
    assert (vad.turn, vad.turn_silence_ms, vad.turn_max_ms, vad.turn_threshold) == (True, 200, 800, 0.7)
    default = VadConfig()
    assert not default.turn and default.turn_silence_ms < default.endpoint_ms < default.turn_max_ms


def test_the_engine_owns_it_and_its_sessions_share_it(data, tmp_path):
    engine = Engine(load_config("fake", ["vad.turn=true", "audio.realtime=false"], src_lang="en", tgt_lang="es"))
    session = engine.session(input=str(data / "realtimestt_asr-reference.wav"), output=str(tmp_path / "o.wav"))
    result = session.run()
    model = engine.turn_model()
    assert "turn" in engine.loads and session.segmenter.turn is model and engine.turn_model() is model  # loaded once
    assert [r.utt_id for r in result.records] == list(range(9))  # the narration's 9 sentences
    engine.cleanup()
    assert model.session is None  # freed with the engine's other models, not kept for the process
    assert engine.turn_model() is not model  # loaded again, as setup() loads the others again
    assert "turn" not in Engine(load_config("fake")).loads
