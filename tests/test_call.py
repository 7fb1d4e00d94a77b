"""s3tvr in a call, through a real PulseAudio server: the translation as a microphone another
program records (parec, as a call app would), a program's audio translated instead of the
microphone while the user still hears it ducked, and nothing left on the server after any exit."""

import json
import os
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from pulse_devices import best_match, heard_whole, pulse_server

from s3tvr.audio.decode import load_audio
from s3tvr.latency.record import read_log

from conftest import one_line_error, s3tvr, s3tvr_cmd

RATE = 16000
pytestmark = [pytest.mark.pulse, pytest.mark.slow]


@pytest.fixture
def pulse(tmp_path):
    """A server whose default output is a null sink, "speaker" (what the user hears: its monitor)."""
    with pulse_server(tmp_path, f"load-module module-null-sink sink_name=speaker rate={RATE} channels=1",
                      "set-default-sink speaker") as env:
        yield env


def listed(env, kind) -> list[dict]:
    out = subprocess.run(["pactl", "-f", "json", "list", kind], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def names(env, kind="sources") -> list[str]:
    return [item["name"] for item in listed(env, kind)]


def owned_modules(env) -> list[str]:
    out = subprocess.run(["pactl", "list", "modules", "short"], env=env, capture_output=True, text=True, check=True).stdout
    return [line.split("\t")[1] for line in out.splitlines() if "s3tvr.pid=" in line]


class Recorder(threading.Thread):
    """parec on a source, as a call app records its microphone: the samples it got."""

    def __init__(self, env, device):
        super().__init__(daemon=True)
        self.proc = subprocess.Popen(["parec", f"--device={device}", "--format=float32le", f"--rate={RATE}", "--channels=1",
                                      "--raw"], env=env, stdout=subprocess.PIPE)
        self.chunks: list[bytes] = []

    def run(self):
        while chunk := self.proc.stdout.read1(8192):
            self.chunks.append(chunk)

    def audio(self) -> np.ndarray:
        self.proc.terminate()
        self.join(timeout=10)
        data = b"".join(self.chunks)
        return np.frombuffer(data[: len(data) // 4 * 4], "<f4")


def start(env, *args, log=None) -> tuple[subprocess.Popen, list[str]]:
    """``s3tvr ARGS`` in the background; its stderr lines as they come."""
    proc = subprocess.Popen([*s3tvr_cmd(), *map(str, args), *(["--log", log] if log else [])], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status: list[str] = []
    threading.Thread(target=lambda: status.extend(proc.stderr), daemon=True).start()
    return proc, status


def wait_for(check, proc, status, seconds=120.0):
    deadline = time.monotonic() + seconds
    while not check():
        assert proc.poll() is None and time.monotonic() < deadline, "".join(status)
        time.sleep(0.1)


def test_a_program_recording_the_virtual_mic_hears_the_translation(pulse, data, tmp_path):
    """Real Spanish speech in (a file at real-time pace), the offline models, and a recorder on the
    virtual microphone: each translation s3tvr spoke is in the recording whole, as it was synthesised,
    and Whisper hears it there."""
    log, said = tmp_path / "latency.jsonl", tmp_path / "said"
    proc, status = start(pulse, "run", "es", "--input", data / "fleurs-es-002.ogg", "--virtual-mic", "--mode", "sentence",
                         "--record-dir", said, log=log)
    wait_for(lambda: "s3tvr" in names(pulse), proc, status)
    recorder = Recorder(pulse, "s3tvr")
    recorder.start()
    assert proc.wait(timeout=180) == 0, "".join(status)
    heard = recorder.audio()
    assert "s3tvr" not in names(pulse) and "s3tvr_out" not in names(pulse, "sinks") and not owned_modules(pulse)

    spoken = [r for r in read_log(log) if r.tgt_text and not r.error]
    assert spoken, "".join(status)
    heard_whole(heard, spoken, said)
    # Between utterances the microphone carries silence, never a gap: the recording is as long as it ran.
    assert len(heard) / RATE > sum(r.out_dur_s for r in spoken)


def test_the_virtual_mic_is_removed_on_a_stop_signal_and_after_a_kill(pulse, data, tmp_path):
    args = ("run", "es", "--config", "fake", "--input", data / "fleurs-es-001.ogg", "--virtual-mic", "call")
    killed, status = start(pulse, *args)
    wait_for(lambda: "call" in names(pulse), killed, status, 60)
    killed.kill()  # SIGKILL: no cleanup can run; the next run unloads what it left
    killed.wait(timeout=10)
    assert "call" in names(pulse)

    proc, status = start(pulse, *args)
    wait_for(lambda: any("translating" in line for line in status), proc, status, 60)
    assert names(pulse).count("call") == 1 and len(owned_modules(pulse)) == 2  # the new run's null sink and source
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM, "".join(status)
    assert "call" not in names(pulse) and "call_out" not in names(pulse, "sinks") and not owned_modules(pulse)


def test_a_programs_audio_is_translated_while_the_user_hears_it_ducked(pulse, data, tmp_path):
    """A player (paplay, named "meeting") plays real speech; --listen-to meeting translates it (fake
    models, the translation written to a file) while the user's speaker still gets the original,
    at -20 dB (--duck); after the run the player plays to the speaker again."""
    clip = load_audio(data / "fleurs-es-002.ogg")
    played = tmp_path / "meeting.wav"
    sf.write(played, np.concatenate([clip, np.zeros(RATE), clip, np.zeros(RATE), clip]), RATE)  # longer than the test
    player = subprocess.Popen(["paplay", "--property=application.name=meeting", played], env=pulse)
    try:
        time.sleep(0.5)
        log = tmp_path / "latency.jsonl"
        proc, status = start(pulse, "run", "es", "--config", "fake", "--listen-to", "meeting", "--duck", "-20",
                             "--output", tmp_path / "out.wav", "--record-dir", tmp_path / "heard", log=log)
        wait_for(lambda: any("listening" in line for line in status), proc, status, 60)
        user = Recorder(pulse, "speaker.monitor")
        user.start()
        wait_for(lambda: log.exists() and read_log(log), proc, status, 40)
        heard = user.audio()  # before the stop: then the player goes back to the speaker at full level
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130, "".join(status)
        sinks = {s["name"]: s["index"] for s in listed(pulse, "sinks")}
        meeting = [s for s in listed(pulse, "sink-inputs") if s["properties"].get("application.name") == "meeting"]
    finally:
        player.kill()
    first = read_log(log)[0]
    assert first.error is None and first.tgt_text
    # What s3tvr heard is the player's speech: found in the clip (normalised correlation at its best lag).
    captured = load_audio(tmp_path / "heard" / f"utt{first.utt_id:05d}_in.wav")[: RATE * 3]
    assert best_match(clip, captured) > 0.8
    # The user heard the original under the translation, ducked: its loud part 20 dB down (± 4).
    ducked_db = 20 * np.log10(np.percentile(np.abs(heard), 99.5) / np.percentile(np.abs(clip), 99.5))
    assert -24 < ducked_db < -16, ducked_db
    assert "s3tvr_listen" not in sinks and not owned_modules(pulse)
    assert meeting and all(s["sink"] == sinks["speaker"] for s in meeting)  # the player is back on the speaker


def test_a_program_not_playing_is_named_in_one_line(pulse, data):
    proc = s3tvr("run", "es", "--config", "fake", "--listen-to", "zoom", env=pulse)
    one_line_error(proc, "'zoom'", "is playing")


def test_without_a_sound_server_the_virtual_mic_names_what_to_install(data, tmp_path):
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path / 'none'}"}
    proc = s3tvr("run", "es", "--config", "fake", "--input", data / "fleurs-es-002.ogg", "--virtual-mic", env=env)
    one_line_error(proc, "PulseAudio or PipeWire", "BlackHole", "VB-CABLE")
