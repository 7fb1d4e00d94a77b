"""Decode any file ffmpeg reads (audio, or the audio track of a video) to mono float32."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import soxr

from s3tvr.audio import SAMPLE_RATE
from s3tvr.errors import InputError

log = logging.getLogger(__name__)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio track of ``path``, mixed to mono and resampled to ``sample_rate``."""
    audio, rate = decode(path)
    audio = audio.mean(axis=0) if audio.shape[0] > 1 else audio[0]
    if rate != sample_rate:
        if rate < SAMPLE_RATE:
            log.warning("%s is sampled at %d Hz: narrow-band audio lowers recognition accuracy", path, rate)
        audio = soxr.resample(audio, rate, sample_rate, quality="HQ")
    return audio.astype(np.float32, copy=False)


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """The first audio track of ``path`` as it is: (channels, samples) float32, and its rate.
    Every way a file can be unusable is one InputError naming the cause."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input file {path} not found: check the path")
    if path.is_dir():
        raise InputError(f"input {path} is a folder: give an audio or video file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc.__class__.__name__}: not an audio or video file ffmpeg can decode") from None
    with container:
        if not container.streams.audio:
            raise InputError(f"{path} has no audio track: give a file with speech in it")
        stream = container.streams.audio[0]
        parts = []
        rate = stream.codec_context.sample_rate
        try:
            for frame in container.decode(stream):
                data = _to_float(frame.to_ndarray())
                channels = len(frame.layout.channels)
                # planar: (channels, samples); packed: (1, samples * channels), interleaved
                parts.append(data if frame.format.is_planar else data.reshape(-1, channels).T)
                rate = frame.sample_rate
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot decode {path}: {exc.__class__.__name__}: the file is damaged or truncated") from None
    if not parts or sum(p.shape[1] for p in parts) == 0:
        raise InputError(f"{path} holds no audio samples: give a recording with speech in it")
    return np.concatenate(parts, axis=1), rate


def _to_float(x: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    return x.astype(np.float32, copy=False)
