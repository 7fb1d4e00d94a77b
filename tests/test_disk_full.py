"""A full disk, met for real: a 256 KB tmpfs, filled but for 60 KB, as the output or cache folder.
Every write of an output or a cache ends in one line naming the path and the space it needs (exit
3: the machine's state, not a bug), and leaves nothing half-written: no partial, no truncated
output, and an earlier complete output at that path as it was."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from s3tvr.errors import S3tvrError

from conftest import DATA, HANG_S, one_line_error, s3tvr

CLIP = DATA / "fleurs-en-004.ogg"  # 4.3 s: 203 KB of 24 kHz output from run, 405 KB of 48 kHz from dub
VIDEO = DATA / "open-dubbing_englishvideo.mp4"  # 1 MB
SIZE_KB = 256
FREE = 60 * 1024  # left free: a few small files fit, no sound file of a few seconds does


@pytest.fixture
def full(tmp_path):
    """A folder on a tmpfs of SIZE_KB with FREE bytes left. Mounted directly where this user may
    (root: CI), else in a mount namespace of its own (unshare -rm), reached through its holder's
    /proc/PID/root; skipped only where neither works."""
    folder = tmp_path / "small"
    folder.mkdir()
    holder = None
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_KB}k", "tmpfs", folder], capture_output=True, text=True)
    why = f"no tmpfs to fill: mount failed ({mounted.stderr.strip().splitlines()[0] if mounted.stderr.strip() else mounted.returncode})"
    if mounted.returncode == 0:
        path = folder
    else:
        try:
            holder = subprocess.Popen(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size={SIZE_KB}k tmpfs '{folder}' && "
                                       "echo mounted && exec sleep infinity"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except FileNotFoundError:
            pytest.skip(f"{why} and unshare is not installed")
        if holder.stdout.readline().strip() != "mounted":
            holder.wait()
            pytest.skip(f"{why}, unshare -rm too ({holder.stderr.read().strip()})")
        path = Path(f"/proc/{holder.pid}/root") / folder.relative_to("/")
    try:
        st = os.statvfs(path)
        assert st.f_blocks * st.f_frsize == SIZE_KB * 1024, "not the tmpfs"
        (path / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - FREE))
        yield path
    finally:
        if holder is None:
            subprocess.run(["umount", "--lazy", folder], check=True)  # lazy: a file a failed test left open
        else:
            holder.kill()
            holder.wait()


def left(folder: Path) -> list[str]:
    """What is in ``folder`` but the filler."""
    return sorted(p.name for p in folder.iterdir() if p.name != "filler")


def earlier_output(path: Path) -> str:
    """A complete output from an earlier run at ``path`` (0.1 s of WAV); its sha1."""
    sf.write(path, np.full(1600, 0.1, np.float32), 16000, format="WAV")
    return hashlib.sha1(path.read_bytes()).hexdigest()


def disk_full_error(exc: S3tvrError, path: Path, flag: str | None = None) -> str:
    """The one-line message of a full disk: the path, the space it needs and what is free where."""
    message = str(exc)
    assert exc.exit_code == 3 and "\n" not in message, message
    assert f"cannot write {path}: the disk is full (needs about" in message and "free on" in message, message
    if flag:
        assert f"give {flag} on another disk" in message, message
    return message


# -- the commands -------------------------------------------------------------------------------


def test_run_output_on_a_full_disk(full):
    out = full / "o.wav"
    before = earlier_output(out)
    proc = s3tvr("run", "en", "--config", "fake", "--fast", "--input", CLIP, "--output", out, timeout=HANG_S)
    assert proc.returncode == 3, proc.stderr
    line = one_line_error(proc, f"cannot write {out}: the disk is full", "needs about 203 KB", "free on", "--output")
    assert "wrote" not in proc.stderr, line
    assert left(full) == ["o.wav"]  # no partial
    assert hashlib.sha1(out.read_bytes()).hexdigest() == before  # the earlier output whole


def test_run_log_on_a_full_disk_keeps_whole_lines_and_the_translation(full, tmp_path):
    with open(full / "filler", "ab") as filler:  # not a page left for the first record
        filler.write(b"\0" * FREE)
    log, out = full / "run.jsonl", tmp_path / "o.wav"
    proc = s3tvr("run", "en", "--config", "fake", "--fast", "--input", CLIP, "--output", out, "--log", log, timeout=HANG_S)
    assert proc.returncode == 3, proc.stderr
    one_line_error(proc, f"cannot write the latency log {log}: the disk is full", "--log on another disk")
    assert sf.info(out).duration > 1  # the translation was written whole
    text = log.read_text() if log.exists() else ""
    assert text == "" or text.endswith("\n") and all(json.loads(line) for line in text.splitlines())  # whole lines only


def test_run_output_over_the_file_size_limit(tmp_path):
    """EFBIG, met for real: the file size limit (ulimit -f) of the process below the output's size."""
    import resource

    out = tmp_path / "o.wav"
    proc = s3tvr("run", "en", "--config", "fake", "--fast", "--input", CLIP, "--output", out, timeout=HANG_S,
                 preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000)))
    assert proc.returncode == 3, proc.stderr
    one_line_error(proc, f"cannot write {out}: the file is over the largest", "ulimit -f", "needs about 203 KB", "raise the limit")
    assert list(tmp_path.iterdir()) == []


def _segments(path: Path) -> None:
    """A segments file to --resume from: the fake backends dub it without ASR, MT or VAD."""
    path.write_text(json.dumps({"input": str(CLIP), "from": "en", "to": "es", "voices": {},
                                "phrases": [{"id": 0, "start": 0.3, "end": 3.9, "source": "hello there", "translation": "hola a todos"}]}))


def dub(src: Path, out: Path, *more: object) -> subprocess.CompletedProcess:
    return s3tvr("dub", src, "--from", "en", "--to", "es", "--config", "fake", "--resume", "--background", "duck", "-o", out, *more,
                 timeout=HANG_S)


def test_dub_output_on_a_full_disk(full, tmp_path):
    out = full / "o.wav"
    _segments(full / "o.segments.json")
    before = earlier_output(out)
    proc = dub(CLIP, out, "--work-dir", tmp_path / "work")  # the cache has room: the dub itself does not
    assert proc.returncode == 3, proc.stderr
    one_line_error(proc, f"cannot write {out}: the disk is full", "needs about 405 KB", "free on", "-o on another disk")
    assert left(full) == ["o.segments.json", "o.wav"]  # no partial, no subtitles of a dub not written
    assert hashlib.sha1(out.read_bytes()).hexdigest() == before
    assert list((tmp_path / "work" / "speech").glob("*.wav"))  # the cached speech kept for the rerun


def test_dub_speech_cache_on_a_full_disk(full, tmp_path):
    out = tmp_path / "o.wav"
    _segments(tmp_path / "o.segments.json")
    proc = dub(CLIP, out, "--work-dir", full / "work")
    assert proc.returncode == 3, proc.stderr
    one_line_error(proc, f"cannot write {full / 'work' / 'speech'}", "the disk is full", "needs about", "--work-dir on another disk")
    assert left(full / "work" / "speech") == []  # no partial
    assert not out.exists()


# -- the writers themselves ---------------------------------------------------------------------


def test_write_wav_text_and_json_on_a_full_disk(full):
    from s3tvr import files

    audio = np.zeros(48000, np.float32)  # 94 KB of 16-bit WAV
    writes = [("a.wav", lambda p: files.write_wav(p, audio, 24000), "needs about 94 KB"),
              ("t.srt", lambda p: files.write_text(p, "x" * 100_000), "needs about 98 KB"),
              ("s.json", lambda p: files.write_json(p, {"x": "y" * 100_000}, flag="--work-dir"), "needs about 98 KB")]
    for name, write, needs in writes:
        path = full / name
        before = earlier_output(path)
        with pytest.raises(S3tvrError) as caught:
            write(path)
        assert needs in disk_full_error(caught.value, path), name
        assert hashlib.sha1(path.read_bytes()).hexdigest() == before, name
    assert "--work-dir on another disk" in str(caught.value)
    assert left(full) == ["a.wav", "s.json", "t.srt"]
    files.write_text(full / "small.txt", "fits")  # what fits is written
    assert (full / "small.txt").read_text() == "fits"


def test_media_write_on_a_full_disk(full):
    """The dub's own writer: libsndfile's FLAC and FFmpeg's MP4 muxer out of room."""
    from s3tvr.dub import media

    original = media.read(VIDEO)
    for name in ("dub.flac", "dub.mp4"):
        path = full / name
        with pytest.raises(S3tvrError) as caught:
            media.write(original, original.audio, path)
        disk_full_error(caught.value, path, "-o")
    assert "needs about 1015 KB" in str(caught.value)  # the video copied: about the original's size
    assert left(full) == []


def test_sound_file_writer_on_a_full_disk(full):
    """The streaming writer of run's and client's --output: the chunk that does not fit."""
    from s3tvr.files import SoundFileWriter

    writer = SoundFileWriter(full / "o.wav")
    writer.open(24000)
    writer.write(np.zeros(24000, np.float32))  # 47 KB: fits
    with pytest.raises(S3tvrError) as caught:
        writer.write(np.zeros(24000, np.float32))
    assert "needs about 94 KB" in disk_full_error(caught.value, full / "o.wav", "--output")
    assert not writer.is_open and left(full) == []


def test_a_stop_while_writing_leaves_no_partial(tmp_path):
    """Ctrl-C (a real SIGINT) after the partial is written, before it is renamed into place."""
    from s3tvr.files import atomic_write, partial_path

    path = tmp_path / "o.json"
    path.write_text("earlier")
    # Python's own Ctrl-C, whatever this process inherited: a runner started from a script in the
    # background (`.ci/run &`) has SIGINT ignored, and Python then leaves it ignored.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with atomic_write(path) as tmp:
                tmp.write_text("half")
                # To this thread: a process-wide kill may be taken by another thread, and handled late.
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                for _ in range(1000):  # the handler runs between bytecodes: at once, or within these 10 s
                    time.sleep(0.01)
                pytest.fail("no KeyboardInterrupt")
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert not partial_path(path).exists() and path.read_text() == "earlier"


def test_other_failures_are_not_a_full_disk(tmp_path):
    """An error that is not for room passes as it is, and leaves no partial either."""
    from s3tvr.files import atomic_write

    path = tmp_path / "o.txt"
    with pytest.raises(ValueError, match="encoder"):
        with atomic_write(path) as tmp:
            tmp.write_text("half")
            raise ValueError("encoder refused")
    assert list(tmp_path.iterdir()) == []
