"""Reading the original and writing the dub: audio at the original's rate and channels; a video's
own stream copied packet for packet (no re-encoding) beside the new audio track and the subtitle
tracks (mov_text in MP4/M4V/MOV, SubRip in MKV, WebVTT in WebM), each tagged with its language."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import av
import numpy as np
import soundfile as sf
import soxr
from av.subtitles.subtitle import SubtitleSet

from s3tvr import files
from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import decode
from s3tvr.dub import subtitles
from s3tvr.errors import InputError, SetupError, brief
from s3tvr.languages import ISO639_2, ISO639_2_B

log = logging.getLogger(__name__)

AUDIO_OUTPUTS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
VIDEO_OUTPUTS = {".mp4": "aac", ".m4v": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus"}
SUBTITLE_CODECS = {".mp4": "mov_text", ".m4v": "mov_text", ".mov": "mov_text", ".mkv": "subrip", ".webm": "webvtt"}
# How each container tags a track's language: MP4 the ISO 639-2/T code, Matroska and WebM the
# bibliographic form; QuickTime's .mov table knows fra and ces, but only ger, dut and chi.
LANGUAGE_TAGS = {".mkv": ISO639_2_B, ".webm": ISO639_2_B, ".mov": {**ISO639_2, "de": "ger", "nl": "dut", "zh": "chi"}}
MS = Fraction(1, 1000)  # the subtitle streams' time base
# The encoders take each cue as an ASS event, and need this header to open: SubRip and WebVTT keep
# only the text, mov_text takes its default style (font, size, colour) from it.
ASS_HEADER = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, \
StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""


@dataclass
class Original:
    path: Path
    audio: np.ndarray  # (channels, samples) float32 at ``rate``
    rate: int
    speech16k: np.ndarray  # mono 16 kHz, for VAD and ASR
    has_video: bool
    video_codecs: tuple[str, ...] = ()  # copied as they are into a video output

    @property
    def duration(self) -> float:
        return self.audio.shape[1] / self.rate


@dataclass(frozen=True)
class SubtitleTrack:
    """A subtitle stream of a video output; the first one written is the default."""

    lang: str  # s3tvr's code (en, es …): tagged in the form the container expects
    title: str
    cues: Sequence[tuple[float, float, str]]  # (start s, end s, text as shown: its lines joined by \n)


def read(path: str | Path) -> Original:
    path = Path(path)
    audio, rate = decode(path)  # decoded once: the mix uses it as it is, VAD and ASR a 16 kHz mono copy
    mono = audio.mean(axis=0) if audio.shape[0] > 1 else audio[0]
    speech16k = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32) if rate != SAMPLE_RATE else mono
    with av.open(str(path)) as container:
        codecs = tuple(s.codec_context.name for s in container.streams.video)
    return Original(path, audio, rate, speech16k, bool(codecs), codecs)


WEBM_VIDEO = ("vp8", "vp9", "av1")  # all WebM holds; the video is copied, never re-encoded


def check_output(path: Path, has_video: bool, video_codecs: tuple[str, ...] = ()) -> None:
    """Fail before any work when the output cannot be written as asked."""
    suffix = path.suffix.lower()
    if suffix not in AUDIO_OUTPUTS and suffix not in VIDEO_OUTPUTS:
        raise InputError(f"output {path.name}: choose an extension s3tvr writes ({', '.join([*VIDEO_OUTPUTS, *AUDIO_OUTPUTS])})")
    if suffix in VIDEO_OUTPUTS and not has_video:
        raise InputError(f"output {path.name} is a video but the input has no video: choose a .wav, .flac or .ogg output")
    foreign = [c for c in video_codecs if c not in WEBM_VIDEO]
    if suffix == ".webm" and foreign:
        raise InputError(f"output {path.name}: WebM cannot hold the input's {foreign[0]} video, which the dub copies as "
                         "it is: choose .mp4 or .mkv")
    files.check_output(path, "-o")


def write(original: Original, audio: np.ndarray, path: Path, subtitles: Sequence[SubtitleTrack] = ()) -> None:
    """Write the dub to ``path`` whole or not at all (s3tvr.files.atomic_write: a full disk is a
    one-line error and leaves nothing). ``subtitles``: the tracks a video output carries (an audio
    file has nowhere to put them)."""
    suffix = path.suffix.lower()
    try:  # the partial keeps the ending: the muxer tells the container by it
        with files.atomic_write(path, path.suffix, size=_size(original, audio, suffix), flag="-o") as tmp:
            if suffix in AUDIO_OUTPUTS:
                files.write_sound(tmp, audio.T, original.rate, AUDIO_OUTPUTS[suffix])
            else:
                _mux(original.path, tmp, audio, original.rate, suffix, subtitles)
    except OSError as exc:  # checked before the work began, so something changed since: never reported as written
        raise InputError(f"cannot write {path}: {exc.strerror or exc}; the cached work in the work folder makes a rerun quick") from None
    except (av.FFmpegError, sf.LibsndfileError) as exc:  # an encoder or the muxer refused (e.g. a codec this container cannot hold)
        raise InputError(f"cannot write {path}: {brief(exc)}; the cached work in the work folder makes a rerun quick") from None


def _size(original: Original, audio: np.ndarray, suffix: str) -> int:
    """About the size of the dub: the sound file's, or the original's size for a video (its video
    copied as it is, an audio track much like the one it had)."""
    if suffix in AUDIO_OUTPUTS:
        return files.audio_bytes(audio.shape[1], audio.shape[0], AUDIO_OUTPUTS[suffix])
    try:
        return original.path.stat().st_size
    except OSError:  # the original is gone since it was read: its audio, as a WAV
        return files.audio_bytes(audio.shape[1], audio.shape[0])


def _mux(src: Path, dst: Path, audio: np.ndarray, rate: int, suffix: str, subtitles: Sequence[SubtitleTrack]) -> None:
    """The input's video streams copied as they are, the new audio encoded, and the subtitles,
    all interleaved by time."""
    channels = audio.shape[0]
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        videos = {s.index: out.add_stream_from_template(s) for s in inp.streams.video}
        astream = out.add_stream(VIDEO_OUTPUTS[suffix], rate=rate, layout="mono" if channels == 1 else "stereo")
        cues = _Cues(out, suffix, subtitles)
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
            cues.until(float(packet.dts * packet.time_base))
            packet.stream = videos[packet.stream.index]
            out.mux(packet)
        audio_until(float("inf"))
        cues.until(float("inf"))
        for packet in astream.encode(None):
            out.mux(packet)


class _Cues:
    """The subtitle tracks as streams of ``out``, their cues encoded in time order as the video
    passes them (written at the end, they would come after every video packet, and a Matroska
    file's clusters would go back in time)."""

    def __init__(self, out: Any, suffix: str, tracks: Sequence[SubtitleTrack]):
        if tracks and not hasattr(SubtitleSet, "create"):
            raise SetupError(f"subtitle tracks need PyAV 16.1 or later (this is {av.__version__}): "
                             "pip install -U av, or dub with --no-subtitles")
        self.out = out
        cues: list[tuple[int, int, Any, str]] = []  # (start ms, end ms, stream, text)
        tags = LANGUAGE_TAGS.get(suffix, ISO639_2)
        for i, track in enumerate(tracks):
            stream = out.add_stream(SUBTITLE_CODECS[suffix])
            stream.codec_context.subtitle_header = ASS_HEADER
            stream.time_base = MS
            stream.metadata.update(language=tags.get(track.lang, "und"), title=track.title)
            if SUBTITLE_CODECS[suffix] == "mov_text":  # MP4 and MOV name a track by its handler: no title is written
                stream.metadata["handler_name"] = track.title
            stream.disposition = av.stream.Disposition.default if i == 0 else 0
            for start, end, text in track.cues:
                a = int(round(start * 1000))
                cues.append((a, max(a + 1, int(round(end * 1000))), stream, text))
        self.pending = deque(sorted(cues, key=lambda cue: cue[0]))

    def until(self, t: float) -> None:
        """Encode and mux every cue that starts by ``t`` seconds."""
        while self.pending and self.pending[0][0] <= t * 1000:
            start, end, stream, text = self.pending.popleft()
            # An ASS event (ReadOrder, Layer, Style, Name, MarginL, MarginR, MarginV, Effect, Text):
            # lines break at \N, and a backslash would start an override code, so none is kept.
            if stream.codec_context.name == "webvtt":  # FFmpeg's WebVTT encoder writes the text as it is
                text = subtitles.vtt_escaped(text)
            event = "0,0,Default,,0,0,0,," + text.replace("\\", "\u2216").replace("\n", "\\N")
            packet = stream.codec_context.encode_subtitle(
                SubtitleSet.create(event.encode(), 0, end - start, start))
            packet.stream, packet.time_base = stream, MS
            packet.pts = packet.dts = start
            packet.duration = end - start
            self.out.mux(packet)
