"""End to end through real audio devices: a PulseAudio server with a virtual microphone (a pipe
source fed from a FIFO) and a virtual speaker (a pipe sink written to a FIFO), reached by s3tvr
through PortAudio. Real Spanish speech goes in; what s3tvr played comes out as it was synthesised, and
Whisper hears it."""

import signal
import subprocess
import threading
import time

import numpy as np
import pytest
from pulse_devices import RATE, Microphone, Speaker, heard_whole

from s3tvr.audio.decode import load_audio
from s3tvr.latency.record import read_log

from conftest import s3tvr_cmd

pytestmark = [pytest.mark.pulse, pytest.mark.slow]


def test_real_speech_into_a_microphone_comes_out_of_the_speaker_translated(pulse, data, tmp_path):
    env, mic_fifo, speaker_fifo = pulse
    devices = subprocess.run([*s3tvr_cmd(), "devices"], env=env, capture_output=True, text=True, timeout=60)
    assert devices.returncode == 0 and " pulse" in devices.stdout, devices.stdout + devices.stderr
    speaker = Speaker(speaker_fifo)
    speaker.start()
    mic = Microphone(mic_fifo)
    mic.start()
    log = tmp_path / "latency.jsonl"
    recording = tmp_path / "played.wav"  # from a microphone, --output records what the speaker played
    said_dir = tmp_path / "said"
    proc = subprocess.Popen([*s3tvr_cmd(), "run", "es", "--input-device", "pulse", "--output-device", "pulse", "--log", log,
                             "--output", recording, "--record-dir", said_dir],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status = []
    threading.Thread(target=lambda: status.extend(proc.stderr), daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while not any("listening" in line for line in status):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(status)
            time.sleep(0.1)
        mic.speak(load_audio(data / "fleurs-es-002.ogg"))
        # Written once the translation has played: in sentence mode one record, in simultaneous mode
        # (auto's choice where passes keep pace) one per clause, the source's last clause at the end.
        while not log.exists() or not any(r.last_clause for r in read_log(log)):
            assert proc.poll() is None and time.monotonic() < deadline + 60, "".join(status)
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        mic.stop.set()
    assert proc.returncode == 130, "".join(status)
    spoken = [r for r in read_log(log) if not r.skipped]
    assert spoken and all(r.error is None and r.tgt_text for r in spoken)
    assert all(0 < r.latency_s < 30 and r.t_play_end > r.t_first_audio for r in spoken)
    said_s = sum(r.out_dur_s for r in spoken)

    played = speaker.audio()
    loud = np.flatnonzero(np.abs(played) > 0.02)
    assert len(loud), "nothing was played"
    heard_s = (loud[-1] - loud[0]) / RATE
    # Sentence mode plays one utterance; clauses may leave pauses between them.
    assert said_s - 0.5 <= heard_s <= said_s + (0.5 if len(spoken) == 1 else 5.0)

    import soundfile as sf

    kept, rate = sf.read(recording)
    assert len(kept) / rate == pytest.approx(said_s, abs=0.1)

    heard_whole(played, spoken, said_dir)


def speak_simultaneous(pulse, data, tmp_path, *flags):
    """Fake models, simultaneous mode, the clip spoken into the virtual microphone: (when the first
    sound was played, when the clip had been spoken, the log's records once its last clause played)."""
    env, mic_fifo, speaker_fifo = pulse
    speaker = Speaker(speaker_fifo)
    speaker.start()
    mic = Microphone(mic_fifo)
    mic.start()
    log = tmp_path / "latency.jsonl"
    proc = subprocess.Popen([*s3tvr_cmd(), "run", "es", "--config", "fake", "--input-device", "pulse", "--output-device",
                             "pulse", *flags, "--mode", "simultaneous", "--set", "simultaneous.trim_s=30",
                             "--set", "tts.seconds_per_word=0.2", "--log", log],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status = []
    threading.Thread(target=lambda: status.extend(proc.stderr), daemon=True).start()
    records = []
    try:
        deadline = time.monotonic() + 60
        while not any("listening" in line for line in status):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(status)
            time.sleep(0.1)
        mic.speak(load_audio(data / "fleurs-es-000.ogg"))  # 12.8 s: one long sentence
        deadline = time.monotonic() + 60
        while not any(r.last_clause for r in records):  # until its last clause has played
            assert proc.poll() is None and time.monotonic() < deadline, "".join(status)
            time.sleep(0.2)
            records = read_log(log) if log.exists() else []
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        mic.stop.set()
    assert proc.returncode == 130, "".join(status)
    assert len(records) >= 2 and len({r.source_id for r in records}) == 1, records  # clauses of one utterance
    assert speaker.first_loud_at() is not None, "nothing was played"
    return speaker.first_loud_at(), mic.spoken_at[0], records


def test_full_duplex_simultaneous_speaks_while_the_clip_is_still_being_spoken(pulse, data, tmp_path):
    """Headphones (--full-duplex): the translation of the clip's first clause comes out of the
    speaker while the rest of the clip is still going into the microphone. The scripted models make
    the clauses come on time (one word every 0.4 s, a sentence every 8 words); with Whisper base on
    two cores they come when its passes agree (tests/test_agreement.py)."""
    first_sound, clip_spoken, records = speak_simultaneous(pulse, data, tmp_path, "--full-duplex")
    assert first_sound < clip_spoken - 2.0, (first_sound - clip_spoken, records)  # heard while still speaking
    first, last = records[0], records[-1]
    assert first.error is None and first.tgt_text and first.t_first_audio < last.t_speech_end - 2.0


def test_half_duplex_simultaneous_computes_while_speaking_and_plays_at_the_pause(pulse, data, tmp_path):
    """Loudspeakers (half-duplex): the clauses are translated and spoken while the person talks, but
    played only once they pause (playing would close the microphone on their words), at once then."""
    first_sound, clip_spoken, records = speak_simultaneous(pulse, data, tmp_path)
    first, last = records[0], records[-1]
    assert first.stages["tts"].end < last.t_speech_end - 2.0, records  # ready well before the pause
    assert first.t_first_audio > last.t_speech_end, records  # but held until the person paused
    assert first_sound > clip_spoken - 1.0, (first_sound - clip_spoken, records)  # (the clip ends in 0.8 s of silence)
    # Once they pause: the endpoint (0.5 s) and the final pass, not the whole translation.
    assert first.t_first_audio - last.t_speech_end < 2.0, records
