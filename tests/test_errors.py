"""Hostile input and stop signals, the way a user meets them: each bad input ends with its exit
code, one line naming the cause, no traceback and nothing left at the output paths; SIGTERM and
SIGHUP stop a run the way Ctrl-C does, keeping every finished utterance."""

import hashlib
import json
import os
import signal
import subprocess

import numpy as np
import pytest
import soundfile as sf

from s3tvr.latency.record import read_log

from conftest import HANG_S, one_line_error, s3tvr, s3tvr_cmd

CLIP = "fleurs-en-004.ogg"  # 4.3 s of English speech
LONG = "realtimestt_asr-reference.wav"  # 52 s of English speech with pauses


@pytest.fixture
def bad(tmp_path):
    """A folder of bad inputs: silence, noise, a 0.1 s clip, a folder named like a file, a JSON
    object that is not a latency record, binary bytes, a manifest that is not JSON."""
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "silence.wav", np.zeros(16000 * 30, np.float32), 16000)
    sf.write(tmp_path / "noise.wav", (0.05 * rng.standard_normal(16000 * 5)).astype(np.float32), 16000)
    sf.write(tmp_path / "blip.wav", (0.3 * rng.standard_normal(1600)).astype(np.float32), 16000)
    (tmp_path / "adir.wav").mkdir()
    (tmp_path / "shape.jsonl").write_text('{"a": 1}\n')
    (tmp_path / "types.jsonl").write_text(json.dumps({"src_lang": "es", "tgt_lang": "en", "latency_s": "fast"}) + "\n")
    (tmp_path / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "manifest").mkdir()
    (tmp_path / "manifest" / "manifest.jsonl").write_text("audio: a.wav\n")
    return tmp_path


# (what, arguments ({d}: tests/data, {t}: the bad-input folder), exit code, words the error line
# must hold, paths under {t} that must not exist afterwards)
CASES = [
    # 2: an output that cannot be written is refused before any work, never reported as written
    ("run: output is a folder", "run en --config fake --fast --input {d}/" + CLIP + " --output {t}/adir.wav --log {t}/l.jsonl",
     2, ["adir.wav is a folder"], ["adir.wav/x", "l.jsonl", ".adir.wav.partial", "adir.wav.partial"]),
    ("dub: output is a folder", "dub {d}/" + CLIP + " --to es --config fake -o {t}/adir.wav", 2, ["adir.wav is a folder"],
     ["adir.work"]),
    # 3: expected errors that used to end in a traceback
    ("dub: unknown source language", "dub {d}/" + CLIP + " --from xx --to en -o {t}/x.wav", 2, ["'xx'", "choose one of"],
     ["x.wav", "x.work"]),
    ("report: JSON of the wrong shape", "report {t}/shape.jsonl", 2, ["line 1", "no src_lang"], []),
    ("report: fields of the wrong type", "report {t}/types.jsonl", 2, ["latency_s is not a number"], []),
    ("report: a binary file", "report {t}/binary.jsonl", 2, ["not a text file"], []),
    ("report: plot into a missing folder", "report {t}/shape.jsonl --plot {t}/none/p.png", 2, ["none", "does not exist"], ["none"]),
    ("eval: manifest not JSON", "eval --config fake --data {t}/manifest --pair es-en --out {t}/out", 2, ["line 1 is not JSON"],
     ["out"]),
    # 5: numbers outside their range, with the range in the message
    ("negative endpoint", "run en --config fake --set vad.endpoint_ms=-5", 2, ["vad.endpoint_ms", "between 32 and 10000"], []),
    ("threshold above 1", "run en --config fake --set vad.threshold=1.5", 2, ["vad.threshold", "at most 1"], []),
    ("zero segment length", "run en --config fake --set vad.max_segment_s=0", 2, ["vad.max_segment_s", "between 1 and 60"], []),
    ("zero beam", "run en --set asr.beam_size=0", 2, ["asr.beam_size", "between 1 and 20"], []),
    ("not a number", "run en --set vad.threshold=.nan", 2, ["vad.threshold", "> 0 and at most 1"], []),
    ("dub: zero phrase length", "dub {d}/" + CLIP + " --to es -o {t}/x.wav --max-phrase 0", 2, ["--max-phrase", "between 2 and 60"],
     ["x.wav", "x.work"]),
    ("prepare: similarity above 1", "finetune prepare {d}/" + CLIP + " --speaker-ref {d}/" + CLIP + " -o {t}/ds --threshold 7",
     2, ["--threshold", "between 0 and 1"], ["ds", "ds.partial"]),
    ("train: zero epochs", "finetune train {t} -o {t}/m --epochs 0", 2, ["--epochs", "between 1"], ["m"]),
    # 6: a run that translated nothing is not a success
    ("run: silence", "run en --config fake --fast --input {t}/silence.wav --output {t}/o.wav --log {t}/l.jsonl", 2,
     ["no speech heard in", "silence.wav"], ["o.wav", "l.jsonl", ".o.wav.partial"]),
    ("run: noise", "run en --config fake --fast --input {t}/noise.wav --output {t}/o.wav", 2, ["no speech heard in"], ["o.wav"]),
    ("run: a 0.1 s clip", "run en --config fake --fast --input {t}/blip.wav --output {t}/o.wav", 2, ["no speech heard in"], ["o.wav"]),
    # 7: the right cause named
    ("dub: silence", "dub {t}/silence.wav --to es -o {t}/x.wav", 2, ["no speech heard in", "silence.wav"], ["x.wav", "x.work"]),
    ("report: a folder", "report {t}", 2, ["is a folder"], []),
    # 8: the input is never destroyed
    ("run: output is the input", "run en --config fake --fast --input {t}/silence.wav --output {t}/./silence.wav", 2,
     ["is the input"], []),
    ("run: log is the input", "run en --config fake --fast --input {t}/silence.wav --output {t}/o.wav --log {t}/silence.wav", 2,
     ["--log", "is the input"], ["o.wav"]),
    # 10: a model that cannot load: no log, record folder or output made before the failure
    ("run: model missing", "run es --fast --input {d}/" + CLIP + " --output {t}/o.wav --log {t}/l.jsonl --record-dir {t}/rec"
     " --set asr.model=/no/such", 3, ["/no/such"], ["o.wav", "l.jsonl", "rec", ".o.wav.partial"]),
    ("dub: ASR without word times", "dub {d}/" + CLIP + " --from en --to es --config fake -o {t}/x.wav", 2, ["word times"],
     ["x.wav", "x.work"]),
]


# Those that load Silero VAD or Whisper in the subprocess: 6-8 s each here.
SLOW = {"run: silence", "run: noise", "run: a 0.1 s clip", "dub: silence", "run: model missing"}


@pytest.mark.parametrize("what,args,code,words,absent",
                         [pytest.param(*c, id=c[0], marks=[pytest.mark.slow] if c[0] in SLOW else []) for c in CASES])
def test_bad_input(bad, data, what, args, code, words, absent):
    before = hashlib.sha1((bad / "silence.wav").read_bytes()).hexdigest()
    proc = s3tvr(*args.format(d=data, t=bad).split(), timeout=300)
    assert proc.returncode == code, proc.stderr
    one_line_error(proc, *words)
    for path in absent:
        assert not (bad / path).exists(), f"{what}: {path} was left behind"
    assert hashlib.sha1((bad / "silence.wav").read_bytes()).hexdigest() == before


@pytest.mark.slow
def test_every_utterance_failed_is_not_success(data, tmp_path):
    log = tmp_path / "l.jsonl"
    proc = s3tvr("run", "en", "--config", "fake", "--fast", "--input", data / LONG, "--output", tmp_path / "o.wav", "--log", log,
                 "--set", f"tts.fail_on=[{','.join(map(str, range(40)))}]")
    assert proc.returncode == 4, proc.stderr
    one_line_error(proc, "none of the", "utterances", "was translated")
    recs = read_log(log)
    assert len(recs) >= 3 and all(r.error for r in recs)  # the log keeps why each failed
    assert not (tmp_path / "o.wav").exists()  # silence is not a translation


@pytest.mark.slow
def test_a_long_legal_name_is_written(data, tmp_path):
    # 254 bytes is a legal name; the temporary file beside it must not push past the 255-byte limit.
    out = tmp_path / ("n" * 250 + ".wav")
    proc = s3tvr("run", "en", "--config", "fake", "--fast", "--input", data / CLIP, "--output", out)
    assert proc.returncode == 0, proc.stderr
    assert sf.info(out).frames > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    one_line_error(s3tvr("run", "en", "--config", "fake", "--fast", "--input", data / CLIP, "--output", tmp_path / ("n" * 260 + ".wav")),
                   "264 bytes", "255")


def test_read_only_folder_names_the_cause(data, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    prefix = []
    if os.geteuid() == 0:
        # Root writes anywhere; in a user namespace of its own it keeps its uid but loses that
        # power over the machine's files, as an ordinary user would be.
        if subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode != 0:
            pytest.skip("running as root without user namespaces: no folder is read-only to root")
        prefix = ["unshare", "--user"]

    def command(*args):
        proc = subprocess.run([*prefix, *s3tvr_cmd(), *map(str, args)], capture_output=True, text=True, timeout=300)
        return proc

    one_line_error(command("run", "en", "--config", "fake", "--fast", "--input", data / CLIP, "--output", folder / "o.wav"),
                   "cannot write", "Permission denied", "--output")
    one_line_error(command("dub", data / CLIP, "--to", "es", "-o", folder / "o.wav"), "cannot write", "Permission denied", "-o")
    assert list(folder.iterdir()) == []


def test_devices_without_sound_hardware_follows_the_error_convention():
    from s3tvr.audio.devices import list_devices

    proc = s3tvr("devices")
    if list_devices():
        assert proc.returncode == 0 and "idx" in proc.stdout, proc.stderr
    else:
        assert proc.returncode == 3, proc.stderr
        one_line_error(proc, "no audio devices found", "--input FILE")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_stop_signals_keep_finished_work(data, tmp_path, sig):
    """What systemd, docker stop or a closed terminal send: the run stops when asked (before the input ends) with the
    shell's code for that signal, and every finished utterance is in a valid output file and the log."""
    log, out = tmp_path / "l.jsonl", tmp_path / "o.wav"
    proc = subprocess.Popen([*s3tvr_cmd(), "run", "en", "--config", "fake", "--input", data / LONG, "--output", out, "--log", log],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("[0]")  # the first translation, at real-time pace
    assert proc.stdout.readline().startswith("[1]")
    proc.send_signal(sig)
    proc.wait(timeout=HANG_S)
    stderr = proc.stderr.read()
    assert proc.returncode == 128 + sig, (proc.returncode, stderr)
    assert "Traceback" not in stderr and f"stopped ({sig.name})" in stderr
    recs = read_log(log)
    assert [r.utt_id for r in recs][:2] == [0, 1] and all(r.latency_s is not None for r in recs)
    audio, rate = sf.read(out, dtype="float32")
    assert len(audio) / rate < sf.info(data / LONG).duration - 10  # stopped when asked: not padded to the input's end
    for r in recs:  # each finished translation is where it was spoken, not silence
        start = int(r.seg_start_s * rate)
        assert np.abs(audio[start:start + int(r.out_dur_s * rate)]).max() > 0.1, r.utt_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.jsonl", "o.wav"]  # no temporary file left


@pytest.mark.slow
def test_a_failed_final_rename_is_never_success(data, tmp_path):
    # Something takes the output's name while the run goes on (here a folder): the finished audio
    # cannot be renamed into place, so the run fails, saying where the translation is.
    out = tmp_path / "o.wav"
    proc = subprocess.Popen([*s3tvr_cmd(), "run", "en", "--config", "fake", "--input", data / LONG, "--output", out],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("[0]")
    out.mkdir()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    stderr = proc.stderr.read()
    assert proc.returncode == 2, stderr
    line = one_line_error(subprocess.CompletedProcess([], 2, "", stderr), "cannot write", "o.wav")
    kept = tmp_path / line.rsplit("the translation is in ", 1)[1].strip()
    assert sf.info(kept).frames > 0  # the finished work is there, under the name the message gives
    assert "wrote" not in stderr
