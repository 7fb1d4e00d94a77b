"""What a user sees at the command line: one-line errors with a fix, exit codes, Ctrl-C, report."""

import json
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from s3tvr.latency.record import read_log

from conftest import HANG_S, REPO, one_line_error, s3tvr, s3tvr_cmd


def test_missing_input_file(tmp_path):
    one_line_error(s3tvr("run", "es", "--config", "fake", "--input", tmp_path / "nope.wav"), "not found", "check the path")


def test_unreadable_input_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 50)
    one_line_error(s3tvr("run", "es", "--config", "fake", "--input", bad), "cannot", "bad.wav")


def test_zero_length_audio(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    one_line_error(s3tvr("run", "es", "--config", "fake", "--input", empty), "no audio samples")


@pytest.mark.slow
def test_eight_khz_stereo_is_resampled_and_translated(data, tmp_path):
    # Telephone-band stereo is not an error: it is mixed down, resampled and translated.
    from s3tvr.audio.decode import load_audio

    speech = load_audio(data / "open-dubbing_englishvideo.mp4", 8000)
    stereo = tmp_path / "phone.wav"
    sf.write(stereo, np.stack([speech, speech * 0.5], axis=1), 8000)
    log = tmp_path / "l.jsonl"
    proc = s3tvr("run", "en", "--config", "fake", "--input", stereo, "--fast", "--output", tmp_path / "o.wav", "--log", log)
    assert proc.returncode == 0, proc.stderr
    assert "8000 Hz" in proc.stderr  # a warning that narrow-band audio lowers accuracy
    assert len(log.read_text().splitlines()) >= 3


def test_a_device_that_does_not_exist():
    one_line_error(s3tvr("run", "es", "--config", "fake", "--input-device", "no-such-microphone"),
                   "no-such-microphone", "s3tvr devices")


def test_unsupported_language_pair_names_the_fix():
    # Offline, the LLM translates into any language, but no voice speaks Japanese; the model stack's does.
    one_line_error(s3tvr("run", "en", "--to", "ja", "--input", "x.wav"), "TTS piper voice speaks en, not ja", "tts.voice=PATH")
    # Whisper's translate task reaches English only; Apertium has the pairs Debian packages.
    err = one_line_error(s3tvr("run", "en", "--to", "es", "--set", "mt=none", "--input", "x.wav"), "en->es")
    assert "asr.task=translate" in err and "MT backend" in err
    one_line_error(s3tvr("run", "de", "--to", "es", "--set", "mt=apertium", "--input", "x.wav"), "no Apertium pair for de->es",
                   "--config stack")


@pytest.mark.slow
def test_bad_config_keys_and_values(data, tmp_path):
    one_line_error(s3tvr("run", "es", "--set", "vad.nope=1"), "vad.nope", "known are")
    one_line_error(s3tvr("run", "es", "--set", "vad.threshold=high"), "vad.threshold")
    one_line_error(s3tvr("run", "es", "--set", "asr.backend=whisperx"), "whisperx", "faster-whisper")
    one_line_error(s3tvr("run", "es", "--config", tmp_path / "none.yaml"), "not found")
    # A user's mistake exits 2; a model or device that cannot be set up exits 3.
    assert s3tvr("run", "es", "--set", "asr.task=listen").returncode == 2
    missing_model = s3tvr("run", "es", "--input", data / "fleurs-es-000.ogg", "--output", tmp_path / "o.wav",
                          "--set", "asr.model=/no/such")
    assert missing_model.returncode == 3 and "/no/such" in missing_model.stderr


def test_verbose_debugging_shows_the_cause_of_an_expected_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("vad: [unclosed\n")
    quiet = s3tvr("run", "es", "--config", bad)
    one_line_error(quiet, "not valid YAML")
    debug = s3tvr("-vv", "run", "es", "--config", bad)
    assert debug.returncode == 2 and "Traceback" in debug.stderr
    assert "caused by" in debug.stderr and "yaml.parser.ParserError" in debug.stderr, debug.stderr


def test_output_folder_that_does_not_exist(data, tmp_path):
    one_line_error(s3tvr("run", "en", "--config", "fake", "--input", data / "fleurs-en-004.ogg",
                         "--output", tmp_path / "no" / "o.wav"), "does not exist")


@pytest.mark.slow
def test_cuda_requested_without_cuda():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    one_line_error(s3tvr("run", "es", "--config", "fake", "--device", "cuda"), "CUDA", "--device cpu")


@pytest.mark.slow
def test_ctrl_c_exits_130_promptly_and_keeps_the_log(data, tmp_path):
    log = tmp_path / "l.jsonl"
    proc = subprocess.Popen([*s3tvr_cmd(), "run", "en", "--config", "fake", "--input", data / "realtimestt_asr-reference.wav",
                             "--output", tmp_path / "o.wav", "--log", log], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()  # the first translation, at real-time pace
    assert first.startswith("[0]")
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=HANG_S)
    assert proc.returncode == 130, proc.returncode
    assert "Traceback" not in proc.stderr.read()
    recs = read_log(log)
    assert recs and recs[0].utt_id == 0
    # Stopped when asked, not at the input's end: a stopped run's output is not padded to the input,
    # so it ends before the 52 s input does (a run that went on would have translated all of it).
    assert sf.info(tmp_path / "o.wav").duration < sf.info(data / "realtimestt_asr-reference.wav").duration - 10
    assert (tmp_path / "o.wav").exists() and not (tmp_path / "o.wav.partial").exists()


def test_help_on_every_command():
    for cmd in ([], ["run"], ["devices"], ["report"]):
        proc = s3tvr(*cmd, "--help")
        assert proc.returncode == 0 and "usage: s3tvr" in proc.stdout
    assert "faster-whisper" in s3tvr("run", "--help").stdout  # the backend table


# What `s3tvr --help` and `import s3tvr` must not load: torch, numpy and the model libraries, the
# dubber and the live engine (with them --help took 0.9 s here instead of 0.15 s).
HEAVY = ("torch", "numpy", "onnxruntime", "ctranslate2", "faster_whisper", "transformers", "s3tvr.dub", "s3tvr.live",
         "s3tvr.backends.registry")


def heavy_loaded_by(code: str) -> set[str]:
    """The HEAVY modules (and their submodules) a fresh interpreter holds after ``code``."""
    proc = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(*sys.modules, file=sys.stderr)"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)  # this checkout first on the path
    assert proc.returncode == 0, proc.stderr
    return {m for m in proc.stderr.split() if m in HEAVY or m.startswith(tuple(h + "." for h in HEAVY))}


def test_help_loads_no_model_library_nor_a_command_of_its_own():
    help_exits_0 = "from s3tvr.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit as stop:\n    assert stop.code == 0"
    assert not heavy_loaded_by(help_exits_0)
    assert not heavy_loaded_by("import s3tvr")


def test_the_package_names_load_when_first_used():
    import s3tvr
    from s3tvr.dub.dubber import Dubber
    from s3tvr.latency.record import read_log
    from s3tvr.live.engine import Engine

    assert (s3tvr.Engine, s3tvr.Dubber, s3tvr.read_log) == (Engine, Dubber, read_log)
    assert all(getattr(s3tvr, name) is not None for name in s3tvr.__all__) and set(s3tvr.__all__) <= set(dir(s3tvr))
    assert not hasattr(s3tvr, "Nothing")  # an AttributeError, as for any module


def test_report_prints_the_table_and_draws_the_plot(tmp_path):
    log = tmp_path / "l.jsonl"
    recs = []
    for i, lat in enumerate([1.0, 2.0, 3.0, 4.0]):
        recs.append({"utt_id": i, "src_lang": "es", "tgt_lang": "en", "latency_s": lat, "t_speech_end": 10.0 * i,
                     "t_vad_emit": 10.0 * i + 0.5, "error": None,
                     "stages": {"asr": {"start": 0.0, "end": 1.0, "first_out": 1.0}, "tts": {"start": 1.0, "end": 3.0, "first_out": 1.5}}})
    recs.append({"utt_id": 4, "src_lang": "es", "tgt_lang": "en", "latency_s": None, "t_speech_end": 50.0, "t_vad_emit": 50.5,
                 "error": "asr: boom", "stages": {}})
    log.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    png = tmp_path / "p.png"
    proc = s3tvr("report", log, "--plot", png)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("es-en")).split()
    # pair utts spoken failed average best worst p50 p90
    assert row[1:] == ["5", "4", "1", "2.50", "1.00", "4.00", "2.50", "3.70"]
    assert "endpoint 0.50  asr 1.00  tts 0.50" in proc.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_on_a_file_that_is_not_a_log(tmp_path):
    bad = tmp_path / "x.jsonl"
    bad.write_text("hello\n")
    one_line_error(s3tvr("report", bad), "not JSON")
    one_line_error(s3tvr("report", tmp_path / "missing.jsonl"), "not found")


def test_a_backend_whose_library_is_missing_names_the_extra_to_install(monkeypatch):
    from s3tvr.backends import registry
    from s3tvr.config import BackendSection
    from s3tvr.errors import SetupError

    missing = registry.BackendInfo("tts", "future", "s3tvr_backend_that_is_not_installed", "future", "test")
    monkeypatch.setattr(registry, "BACKENDS", registry.BACKENDS + [missing])
    with pytest.raises(SetupError, match=r"tts backend future needs .* pip install 's3tvr\[future\]'"):
        registry.create("tts", BackendSection("future"), src_lang="es", tgt_lang="en")
    assert "future" in registry.names("tts")
