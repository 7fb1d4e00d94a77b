"""Voice fine-tuning: ``s3tvr finetune prepare`` on recordings of the target speaker mixed with
another speaker and noise, and ``s3tvr finetune train`` on a tiny XTTS whose result the run
command loads and speaks with."""

from __future__ import annotations

import csv
import json
import subprocess

import numpy as np
import pytest
import soundfile as sf

from s3tvr.audio.decode import load_audio
from s3tvr.finetune.prepare import PrepareOptions, clip_snr_db, cut_clips, speech_loss_db
from s3tvr.latency.record import read_log

from conftest import DATA, s3tvr_cmd

RATE = 22050
TARGET = ["lj001-0004.ogg", "lj001-0005.ogg", "lj001-0006.ogg", "lj001-0009.ogg", "lj001-0011.ogg"]  # LJSpeech
REFERENCE = DATA / "lj001-0001.ogg"  # the same speaker, a clip not in the recordings


def _part(name: str) -> np.ndarray:
    audio = load_audio(DATA / name, RATE)
    return audio / np.abs(audio).max() * 0.5


def _recording(parts: list[tuple[str, np.ndarray]], noise_db: float, seed: int) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Parts 1 s apart over the kitchen-noise recording at ``noise_db`` below the speech; where each part is."""
    gap = np.zeros(RATE, np.float32)
    audio, where, t = [gap], [], 1.0
    for label, part in parts:
        audio += [part, gap]
        where.append((label, t, t + len(part) / RATE))
        t += len(part) / RATE + 1.0
    speech = np.concatenate(audio)
    noise = np.resize(load_audio(DATA / "noise_dishes_20s.wav", RATE), len(speech))
    noise = np.roll(noise, seed * RATE)
    level = np.concatenate([p for label, p in parts if label != "clipped"])
    gain = np.sqrt(np.mean(level[np.abs(level) > 0.01] ** 2) / np.mean(noise ** 2) / 10 ** (noise_db / 10))
    return (speech + gain * noise).astype(np.float32), where


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Two recordings of LJSpeech's reader with a second speaker (FLEURS), under kitchen noise at
    20 dB, one of her sentences recorded too loud (clipped), and one drowned in noise (-5 dB)."""
    folder = tmp_path_factory.mktemp("recordings")
    loud = np.clip(_part(TARGET[3]) * 8, -1.0, 1.0)
    first, where1 = _recording([("target", _part(TARGET[0])), ("other", _part("fleurs-en-003.ogg")),
                                ("target", _part(TARGET[1])), ("clipped", loud)], 20, seed=0)
    second, where2 = _recording([("target", _part(TARGET[2])), ("other", _part("fleurs-en-004.ogg")),
                                 ("target", _part(TARGET[4]))], 20, seed=3)
    noisy, where3 = _recording([("noisy", _part(TARGET[1]))], -5, seed=7)
    noisy *= 0.9 / np.abs(noisy).max()  # loud noise, not a clipped recording
    sf.write(folder / "session1.wav", first, RATE)
    (folder / "more").mkdir()
    sf.write(folder / "more" / "session2.flac", second, RATE)
    sf.write(folder / "more" / "kitchen.ogg", noisy, RATE)
    return folder, {"session1.wav": where1, "session2.flac": where2, "kitchen.ogg": where3}


@pytest.fixture(scope="module")
def dataset(recordings, tmp_path_factory):
    folder, _ = recordings
    out = tmp_path_factory.mktemp("prepared") / "dataset"
    proc = subprocess.run(s3tvr_cmd() + ["finetune", "prepare", str(folder), "--speaker-ref", str(REFERENCE), "-o", str(out),
                                         "--lang", "en", "--speaker-name", "lj"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def _label(where: list[tuple[str, float, float]], start: float, end: float) -> str:
    """The part a clip lies on (the one it overlaps most)."""
    overlap = [(min(end, e) - max(start, s), label) for label, s, e in where]
    best = max(overlap)
    return best[1] if best[0] > 0 else "silence"


@pytest.mark.slow
def test_prepare_keeps_only_clean_clips_of_the_target_speaker(recordings, dataset):
    _, where = recordings
    out, stdout = dataset
    info = json.loads((out / "dataset.json").read_text())
    by_label: dict[str, list[dict]] = {}
    for clip in info["clips"]:
        name = clip["source"].rsplit("/", 1)[-1]
        by_label.setdefault(_label(where[name], clip["start"], clip["end"]), []).append(clip)
    # her four clean sentences are kept, and nothing else
    kept = [c for c in info["clips"] if not c["reason"]]
    assert {_label(where[c["source"].rsplit("/", 1)[-1]], c["start"], c["end"]) for c in kept} == {"target"}
    assert len(by_label["target"]) == 4 and all(not c["reason"] for c in by_label["target"])
    assert all(c["reason"] == "other speaker" and c["similarity"] < 0.75 for c in by_label["other"])
    assert all(c["reason"] == "clipped" for c in by_label["clipped"])
    assert all(c["reason"] == "too noisy" for c in by_label["noisy"])
    assert all(c["similarity"] >= 0.75 and c["confidence"] >= 0.6 and c["speech_loss_db"] <= 3.0 for c in kept)
    # the report: counts by reason, minutes, the histogram
    assert info["clips_kept"] == len(kept) == info["clips_train"] + info["clips_eval"] and info["clips_eval"] >= 1
    assert info["drops"]["other speaker"]["clips"] == len(by_label["other"])
    assert info["minutes_kept"] == pytest.approx(sum(c["end"] - c["start"] for c in kept) / 60, abs=0.01)
    assert "other speaker" in stdout and "kept" in stdout
    assert (out / "lengths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.parent.glob("*.partial"))


@pytest.mark.slow
def test_prepare_writes_a_coqui_dataset(dataset):
    out, _ = dataset
    rows = []
    for name in ("metadata_train.csv", "metadata_eval.csv"):
        with open(out / name, newline="") as f:
            rows += list(csv.DictReader(f, delimiter="|"))
    assert rows and all(r["speaker_name"] == "lj" for r in rows)
    texts = " ".join(r["text"].lower() for r in rows)
    # The ASR heard her sentences: three of these four at least (a spelling such as "moveable" may
    # come and go with the CPU the model runs on).
    heard = [words for words in ("block books", "movable metal letters", "typography", "first importance") if words in texts]
    assert len(heard) >= 3, texts
    for row in rows:
        audio, rate = sf.read(out / row["audio_file"])
        assert rate == 22050 and audio.ndim == 1 and 1.0 <= len(audio) / rate <= 11.6
        assert np.abs(audio).max() <= 0.9
        import pyloudnorm

        assert pyloudnorm.Meter(rate).integrated_loudness(audio) == pytest.approx(-20.0, abs=1.0)
    assert len(list((out / "wavs").iterdir())) == len(rows)


@pytest.mark.slow
def test_prepare_resumes_after_an_interruption(recordings, tmp_path):
    """Ctrl-C during the last recording (session1.wav; more/ sorts first): the clips of the
    recordings before are kept and not redone."""
    from s3tvr.config import load_config
    from s3tvr.finetune.prepare import Preparer
    from s3tvr.progress import Progress

    folder, _ = recordings
    out = tmp_path / "dataset"

    class Interrupt(Progress):
        def stage(self, name, total):
            def tick(*_):
                if name.endswith("session1.wav"):
                    raise KeyboardInterrupt
            return tick

    def config():
        return load_config("offline", [], src_lang="en", tgt_lang="en")
    with pytest.raises(KeyboardInterrupt):
        Preparer(config(), [folder], out, [REFERENCE], PrepareOptions(language="en"), Interrupt()).run()
    assert not out.exists()
    partial = tmp_path / "dataset.partial"
    done = list(partial.glob("*.json"))
    assert len(done) == 2 and "session2" in " ".join(d.read_text() for d in done)
    written = {p: p.stat().st_mtime_ns for p in (partial / "wavs").glob("session2-*")}
    assert written

    seen = []

    class Count(Progress):
        def stage(self, name, total):
            seen.append(name)
            return lambda *_: None

    result = Preparer(config(), [folder], out, [REFERENCE], PrepareOptions(language="en"), Count()).run()
    assert seen == ["3/3 session1.wav"]  # the others came from the interrupted run
    assert all((out / "wavs" / p.name).stat().st_mtime_ns == t for p, t in written.items())
    assert result.report["clips_kept"] == 4 and not partial.exists()


@pytest.mark.slow
def test_prepare_keeps_clips_cut_tight_as_recorded(tmp_path):
    """Recordings with no pauses (already cut, as LJSpeech's) give the denoiser no noise to learn:
    they are kept as recorded instead of being gated blindly."""
    from s3tvr.config import load_config
    from s3tvr.finetune.prepare import Preparer

    clips = [DATA / "lj001-0004.ogg", DATA / "lj001-0006.ogg"]
    result = Preparer(load_config("offline", [], src_lang="en", tgt_lang="en"), clips, tmp_path / "d", [REFERENCE],
                      PrepareOptions(language="en")).run()
    assert [c.reason for c in result.clips] == [None, None]
    assert all(c.speech_loss_db is None and c.snr_db is None and c.similarity > 0.8 for c in result.clips)


def test_cut_clips_at_pauses_within_the_length_limits():
    opts = PrepareOptions(max_clip_s=11.5, max_pause_s=0.6)
    regions = [(1.0, 3.0), (3.4, 6.0), (6.5, 9.0), (10.0, 12.0), (12.2, 13.0), (20.0, 21.5)]
    clips = cut_clips(regions, 25.0, opts)
    # short pauses joined while the clip stays under 11.5 s; the 1 s pause and the long gap cut
    assert [(round(s, 2), round(e, 2)) for s, e in clips] == [(0.85, 9.15), (9.85, 13.15), (19.85, 21.65)]
    assert all(b[0] >= a[1] for a, b in zip(clips, clips[1:]))  # never overlapping
    long = cut_clips([(0.0, 5.0), (5.3, 10.0), (10.3, 14.0)], 14.0, opts)
    assert all(e - s <= 11.5 for s, e in long) and len(long) == 2


def test_speech_loss_and_snr_measure_what_the_denoiser_did():
    rng = np.random.default_rng(0)
    t = np.arange(RATE * 3) / RATE
    speech = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    noise = 0.01 * rng.standard_normal(len(t)).astype(np.float32)
    profile = 0.01 * rng.standard_normal(RATE).astype(np.float32)
    noisy = speech + noise
    assert speech_loss_db(noisy, speech, profile, RATE) == pytest.approx(0.0, abs=0.2)  # only the noise went
    assert speech_loss_db(noisy, speech * 10 ** (-6 / 20), profile, RATE) == pytest.approx(6.0, abs=0.3)  # speech went too
    in_band = (3400 - 300) / (RATE / 2)  # the share of white noise's power in the speech band
    expected = 10 * np.log10(np.mean(speech ** 2) / (in_band * np.mean(noise ** 2)))
    assert clip_snr_db(noisy, profile, RATE) == pytest.approx(expected, abs=0.5)
    assert clip_snr_db(noisy, np.concatenate([profile] * 3), RATE) == pytest.approx(expected, abs=0.5)  # any profile length


def _fail(*args, timeout=300) -> str:
    proc = subprocess.run(s3tvr_cmd() + ["finetune", *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode in (2, 3) and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def test_prepare_errors_are_one_line(tmp_path):
    clip = str(DATA / "lj001-0004.ogg")
    assert "not found" in _fail("prepare", str(tmp_path / "missing"), "--speaker-ref", clip, "-o", str(tmp_path / "d"))
    assert "speaker reference" in _fail("prepare", clip, "--speaker-ref", str(tmp_path / "me.wav"), "-o", str(tmp_path / "d"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert "not empty" in _fail("prepare", clip, "--speaker-ref", clip, "-o", str(tmp_path / "full"))
    (tmp_path / "empty").mkdir()
    assert "no audio or video files" in _fail("prepare", str(tmp_path / "empty"), "--speaker-ref", clip, "-o", str(tmp_path / "d"))


@pytest.mark.slow
@pytest.mark.stack
def test_train_errors_are_one_line(dataset, tiny, base_model, tmp_path):
    out, _ = dataset
    assert "not a prepared dataset" in _fail("train", str(tmp_path), "--xtts-dir", str(tiny.xtts), "-o", str(tmp_path / "m"))
    assert "too little data" in _fail("train", str(out), "--xtts-dir", str(tiny.xtts), "-o", str(tmp_path / "m"))
    assert "s3tvr download xtts-train" in _fail("train", str(out), "--min-minutes", "0.2", "--xtts-dir", str(tiny.xtts),
                                                "-o", str(tmp_path / "m"))
    assert "nothing to resume" in _fail("train", str(out), "--min-minutes", "0.2", "--xtts-dir", str(base_model),
                                        "-o", str(tmp_path / "m"), "--resume")
    assert not (tmp_path / "m").exists()


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    """A tiny XTTS v2 with the files training needs (dvae.pth, mel_stats.pth); room for 11.6 s clips' codes."""
    from tiny_models import add_xtts_training_files, build_xtts

    folder = build_xtts(tmp_path_factory.mktemp("xtts-base"), max_audio_tokens=300)
    add_xtts_training_files(folder)
    return folder


@pytest.mark.slow
@pytest.mark.stack
def test_train_two_steps_then_run_speaks_with_the_result(dataset, base_model, tiny, tmp_path):
    import torch

    out, _ = dataset
    model = tmp_path / "xtts_lj"
    proc = subprocess.run(s3tvr_cmd() + ["finetune", "train", str(out), "--xtts-dir", str(base_model), "-o", str(model),
                                         "--max-steps", "2", "--min-minutes", "0.2", "--workers", "0"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 steps" in proc.stdout
    summary = json.loads((model / "finetune.json").read_text())
    assert summary["steps"] == 2 and summary["stopped"] == "reached --max-steps 2" and summary["best_eval_loss"] > 0
    for name in ("model.pth", "config.json", "vocab.json"):
        assert (model / name).is_file()
    voice = sorted((model / "voice").glob("*.wav"))
    assert voice and sum(sf.info(v).duration for v in voice) >= 10
    # the GPT moved; the frozen decoder did not
    tuned = torch.load(model / "model.pth", map_location="cpu", weights_only=False)["model"]
    base = torch.load(base_model / "model.pth", map_location="cpu", weights_only=False)["model"]
    gpt = [k for k in base if k.startswith("gpt.") and base[k].dtype.is_floating_point]
    assert any(not torch.equal(base[k], tuned[k]) for k in gpt)
    assert all(torch.equal(base[k], tuned[k]) for k in base if k.startswith("hifigan_decoder."))
    assert not list((model / "training").rglob("*.pth"))  # finished: the trainer's checkpoints are removed

    # the run command loads it as --xtts-dir, with the fine-tuned speaker's clips as the voice
    wav, log = tmp_path / "out.wav", tmp_path / "latency.jsonl"
    proc = subprocess.run(s3tvr_cmd() + ["run", "es", "--to", "en", "--input", str(DATA / "fleurs-es-000.ogg"), "--fast",
                                         "--device", "cpu", "--set", f"asr.model={tiny.nemo}", "--set", f"mt.model={tiny.nllb}",
                                         "--xtts-dir", str(model), "--seed", "1", "--output", str(wav), "--log", str(log)],
                          capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fine-tuned speaker" in proc.stderr
    audio, rate = sf.read(wav)
    assert rate == 24000 and np.abs(audio).max() > 0.01
    records = read_log(log)
    assert records and all(r.error is None and r.stages["tts"].backend == "xtts" for r in records)


@pytest.mark.slow
@pytest.mark.stack
def test_train_resumes_after_ctrl_c(dataset, base_model, tmp_path):
    from s3tvr.finetune.train import TrainOptions, train
    from s3tvr.progress import Progress

    out, _ = dataset
    model = tmp_path / "xtts_lj"

    class CtrlC(Progress):  # Ctrl-C right after the second step
        def stage(self, name, total):
            steps = iter(range(1, 100))
            def tick(*_):
                if next(steps) == 2:
                    raise KeyboardInterrupt
            return tick

    options = dict(max_steps=3, min_minutes=0.2, workers=0)
    with pytest.raises(KeyboardInterrupt):
        train(out, base_model, model, TrainOptions(**options), CtrlC())
    assert not (model / "model.pth").exists() and list((model / "training").rglob("checkpoint_2.pth"))
    assert "add --resume" in _fail("train", str(out), "--xtts-dir", str(base_model), "-o", str(model), "--min-minutes", "0.2")
    result = train(out, base_model, model, TrainOptions(**options, resume=True))
    assert result.summary["steps"] == 3 and (model / "model.pth").is_file()
