"""Reading the original and writing the dub: audio at the original's rate and channels; a video's
own stream copied packet for packet (no re-encoding) beside the new audio track."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

from s3tvr import files
from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import decode
from s3tvr.errors import InputError

log = logging.getLogger(__name__)

AUDIO_OUTPUTS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
VIDEO_OUTPUTS = {".mp4": "aac", ".m4v": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus"}


@dataclass
class Original:
    path: Path
    audio: np.ndarray  # (channels, samples) float32 at ``rate``
    rate: int
    speech16k: np.ndarray  # mono 16 kHz, for VAD and ASR
    has_video: bool

    @property
    def duration(self) -> float:
        return self.audio.shape[1] / self.rate


def read(path: str | Path) -> Original:
    path = Path(path)
    audio, rate = decode(path)  # decoded once: the mix uses it as it is, VAD and ASR a 16 kHz mono copy
    mono = audio.mean(axis=0) if audio.shape[0] > 1 else audio[0]
    speech16k = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32) if rate != SAMPLE_RATE else mono
    with av.open(str(path)) as container:
        has_video = bool(container.streams.video)
    return Original(path, audio, rate, speech16k, has_video)


def check_output(path: Path, has_video: bool) -> None:
    """Fail before any work when the output cannot be written as asked."""
    suffix = path.suffix.lower()
    if suffix not in AUDIO_OUTPUTS and suffix not in VIDEO_OUTPUTS:
        raise InputError(f"output {path.name}: choose an extension s3tvr writes ({', '.join([*VIDEO_OUTPUTS, *AUDIO_OUTPUTS])})")
    if suffix in VIDEO_OUTPUTS and not has_video:
        raise InputError(f"output {path.name} is a video but the input has no video: choose a .wav, .flac or .ogg output")
    files.check_output(path, "-o")


def write(original: Original, audio: np.ndarray, path: Path) -> None:
    """Write the dub to ``path``: through a temporary file, renamed at the end."""
    tmp = files.partial_path(path, path.suffix)  # the muxer tells the container by the ending
    try:
        if path.suffix.lower() in AUDIO_OUTPUTS:
            sf.write(tmp, audio.T, original.rate, format=AUDIO_OUTPUTS[path.suffix.lower()])
        else:
            _mux(original.path, tmp, audio, original.rate, VIDEO_OUTPUTS[path.suffix.lower()])
        tmp.replace(path)
    except OSError as exc:  # checked before the work began, so something changed since: never reported as written
        raise InputError(f"cannot write {path}: {exc.strerror or exc}; the cached work in the work folder makes a rerun quick") from None
    finally:
        tmp.unlink(missing_ok=True)


def _mux(src: Path, dst: Path, audio: np.ndarray, rate: int, codec: str) -> None:
    """The input's video streams copied as they are, then the new audio encoded, interleaved by time."""
    channels = audio.shape[0]
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        videos = {s.index: out.add_stream_from_template(s) for s in inp.streams.video}
        astream = out.add_stream(codec, rate=rate, layout="mono" if channels == 1 else "stereo")
        mix = audio if channels <= 2 else audio[:2]
        frame_size = 1024
        pos = 0

        def audio_until(t: float) -> None:
            nonlocal pos
            while pos < mix.shape[1] and pos / rate <= t:
                chunk = np.ascontiguousarray(mix[:, pos:pos + frame_size], dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=astream.layout.name)
                frame.sample_rate = rate
                frame.pts = pos
                frame.time_base = Fraction(1, rate)
                for packet in astream.encode(frame):
                    out.mux(packet)
                pos += frame_size

        for packet in inp.demux(*inp.streams.video):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            audio_until(float(packet.dts * packet.time_base))
            packet.stream = videos[packet.stream.index]
            out.mux(packet)
        audio_until(float("inf"))
        for packet in astream.encode(None):
            out.mux(packet)
