"""Decode any file ffmpeg reads (audio, or the audio track of a video) to mono float32."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import soxr

from s3tvr.errors import InputError

log = logging.getLogger(__name__)


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """The first audio track of ``path``, mixed to mono and resampled to ``sample_rate``."""
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
        try:
            for frame in container.decode(stream):
                data = _to_float(frame.to_ndarray())
                if frame.format.is_planar:  # (channels, samples)
                    parts.append(data.mean(axis=0) if data.shape[0] > 1 else data[0])
                else:  # packed: (1, samples * channels)
                    channels = len(frame.layout.channels)
                    parts.append(data.reshape(-1, channels).mean(axis=1))
                rate = frame.sample_rate
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot decode {path}: {exc.__class__.__name__}: the file is damaged or truncated") from None
    if not parts or sum(len(p) for p in parts) == 0:
        raise InputError(f"{path} holds no audio samples: give a recording with speech in it")
    audio = np.concatenate(parts)
    if rate != sample_rate:
        if rate < 16000:
            log.warning("%s is sampled at %d Hz: narrow-band audio lowers recognition accuracy", path, rate)
        audio = soxr.resample(audio, rate, sample_rate, quality="HQ")
    return audio.astype(np.float32, copy=False)


def _to_float(x: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    return x.astype(np.float32, copy=False)
