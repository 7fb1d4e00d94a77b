#!/usr/bin/env python3
"""Build a Spanish-speech video for trying s3tvr dub offline: the frames of the English test video
(tests/data/open-dubbing_englishvideo.mp4, its packets unchanged) with a Spanish FLEURS clip as its
sound, padded to the video's length.

    python scripts/spanish_video.py talk.es.mp4
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from s3tvr.audio.decode import load_audio

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
VIDEO = DATA / "open-dubbing_englishvideo.mp4"


def spanish_video(path: Path, with_audio: bool = True) -> Path:
    """The test video's frames (its packets, unchanged) with a Spanish FLEURS clip as its sound."""
    speech = load_audio(DATA / "fleurs-es-002.ogg", 44100)
    with av.open(str(VIDEO)) as src, av.open(str(path), "w") as out:
        video = out.add_stream_from_template(src.streams.video[0])
        stream = out.add_stream("aac", rate=44100, layout="mono") if with_audio else None
        length = int(src.streams.audio[0].duration)  # the original audio track's samples at 44.1 kHz
        audio = np.zeros(length, np.float32)
        audio[:min(length, len(speech))] = speech[:length]
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                out.mux(packet)
        if stream is not None:
            for i in range(0, length, 1024):
                frame = av.AudioFrame.from_ndarray(audio[None, i:i + 1024].copy(), format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 44100, i, Fraction(1, 44100)
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(spanish_video(Path(sys.argv[1])))
