"""``s3tvr finetune prepare``: raw recordings into a clean training set for XTTS v2.

    decode → speech regions (Silero VAD) → clips of 1–11.5 s cut at pauses → the target speaker
    only (Resemblyzer) → denoise (rejected when it ate speech) → words (the configured ASR) →
    loudness-normalised 22.05 kHz WAVs + coqui-tts metadata CSVs + dataset.json + lengths.png

A clip is checked cheapest test first and dropped at the first it fails; every drop is counted
by reason in the report. Work on each input file is kept in ``OUTPUT.partial/`` as it finishes,
so a run stopped with Ctrl-C resumes where it was; the dataset folder appears only when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import soxr

from s3tvr import bounds, files
from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import decode, load_audio
from s3tvr.audio.denoise import MIN_PROFILE_S, denoise
from s3tvr.audio.loudness import match_loudness
from s3tvr.backends.device import check_device
from s3tvr.backends.voice_similarity import SpeakerEncoder
from s3tvr.bounds import Range
from s3tvr.config import Config
from s3tvr.errors import InputError
from s3tvr.languages import XTTS_CODES
from s3tvr.live.engine import Engine
from s3tvr.live.segmenter import speech_regions
from s3tvr.progress import Progress

log = logging.getLogger(__name__)

RATE = 22050  # XTTS v2's training rate (its GPT trainer reads clips at 22.05 kHz)
MEDIA = {".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".mp4", ".mkv", ".mov", ".webm", ".avi"}
PAD_S = 0.15  # silence kept around a clip's speech
SPEECH_BAND = (300.0, 3400.0)  # Hz: where speech energy lives; what the denoiser must not remove
DATASET_FILE = "dataset.json"


@dataclass
class PrepareOptions:
    language: str = ""  # the recordings' language (default: detected from the reference or the first input)
    speaker_name: str = "speaker"
    threshold: Annotated[float, Range(0, 1)] = 0.75  # speaker similarity to the reference (Resemblyzer cosine); same speaker ~0.85-0.95
    min_clip_s: Annotated[float, Range(0.5, 11)] = 1.0
    max_clip_s: Annotated[float, Range(2, 11.6)] = 11.5  # XTTS's trainer skips clips over 11.6 s
    max_pause_s: Annotated[float, Range(0.1, 5)] = 0.6  # pauses kept inside a clip
    denoise: bool = True
    # Gentle gating (noisereduce): at 0.75/1.5 it removed 2.6 dB of LJSpeech's speech under 20 dB SNR
    # kitchen noise, at 0.5/1.0 1.1 dB (benchmarks/bench_prepare.py --denoise).
    denoise_strength: Annotated[float, Range(0, 1)] = 0.5  # prop_decrease: how far gated bins are cut
    denoise_n_std: Annotated[float, Range(0, 10)] = 1.0  # gate only bins below the noise mean + this many deviations
    max_speech_loss_db: Annotated[float, Range(0, 60)] = 3.0  # reject a clip when denoising removed more speech-band energy than this
    min_confidence: Annotated[float, Range(0, 1)] = 0.6  # mean ASR word probability
    min_speech_share: Annotated[float, Range(0, 1)] = 0.4  # words must cover this share of the clip
    max_clipped: Annotated[float, Range(0, 1)] = 0.001  # share of samples at full scale
    # Speech-band SNR against the recording's pauses: noisier clips teach the model the noise.
    min_snr_db: Annotated[float, Range(-20, 60)] = 12.0
    loudness_lufs: Annotated[float, Range(-40, -5)] = -20.0
    eval_every: Annotated[int, Range(2, 1000)] = 10  # every 10th kept clip goes to the eval split (at least one)

    def __post_init__(self) -> None:
        bounds.check(self)


@dataclass
class Clip:
    source: str
    start: float
    end: float
    reason: Optional[str] = None  # why it was dropped; None: kept
    snr_db: Optional[float] = None
    similarity: Optional[float] = None
    speech_loss_db: Optional[float] = None
    confidence: Optional[float] = None
    text: str = ""
    file: str = ""  # under the dataset folder

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class PrepareResult:
    folder: Path
    report: dict[str, Any]
    clips: list[Clip] = field(default_factory=list)


def input_files(inputs: list[str | Path]) -> list[Path]:
    """Audio and video files named, or found in folders named (recursively), in a stable order."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            media = sorted(p for p in item.rglob("*") if p.suffix.lower() in MEDIA and p.is_file())
            if not media:
                raise InputError(f"{item} holds no audio or video files ({', '.join(sorted(MEDIA))})")
            found += media
        elif item.is_file():
            found.append(item)
        else:
            raise InputError(f"input {item} not found: give recordings (files or folders)")
    return list(dict.fromkeys(found))


def cut_clips(regions: list[tuple[float, float]], total_s: float, options: PrepareOptions) -> list[tuple[float, float]]:
    """Speech regions joined into clips at most ``max_clip_s`` long, cut in the pauses between
    them (pauses up to ``max_pause_s`` stay inside a clip), with a little silence around."""
    clips: list[list[float]] = []
    for start, end in regions:
        if clips and start - clips[-1][1] <= options.max_pause_s and end - clips[-1][0] <= options.max_clip_s - 2 * PAD_S:
            clips[-1][1] = end
        else:
            clips.append([start, end])
    padded = []
    for i, (start, end) in enumerate(clips):
        before = clips[i - 1][1] if i else 0.0
        after = clips[i + 1][0] if i + 1 < len(clips) else total_s
        padded.append((max(start - PAD_S, (before + start) / 2, 0.0), min(end + PAD_S, (end + after) / 2, total_s)))
    return padded


def _band_power(x: np.ndarray, rate: int) -> float:
    """Mean power per sample in the speech band."""
    if len(x) == 0:
        return 0.0
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spectrum[(freqs >= SPEECH_BAND[0]) & (freqs <= SPEECH_BAND[1])].sum()) / len(x) ** 2


def clip_snr_db(clip: np.ndarray, noise: np.ndarray, rate: int) -> float:
    """The clip's speech-band signal-to-noise ratio, the noise measured in the recording's pauses."""
    noise_power = _band_power(noise, rate)
    speech = _band_power(clip, rate) - noise_power
    if noise_power <= 0:
        return math.inf
    return 10 * math.log10(speech / noise_power) if speech > 0 else -math.inf


def speech_loss_db(before: np.ndarray, after: np.ndarray, noise: np.ndarray, rate: int) -> float:
    """How much speech-band energy the denoiser removed beyond the noise it was meant to remove, in dB:
    the band energy before, less what the noise profile predicts for a clip this long, over the energy after."""
    speech = _band_power(before, rate) - _band_power(noise, rate)
    kept = _band_power(after, rate)
    if speech <= 0 or kept <= 0:
        return math.inf if speech > 0 else 0.0
    return max(0.0, 10 * math.log10(speech / kept))


class Preparer:
    def __init__(self, config: Config, inputs: list[str | Path], output: str | Path, references: list[str | Path],
                 options: PrepareOptions | None = None, progress: Progress | None = None):
        check_device(config.device)
        self.config = config
        self.options = dataclasses.replace(options or PrepareOptions())  # its language is filled in
        self.progress = progress or Progress()
        self.files = input_files(inputs)
        self.references = [Path(r) for r in references]
        if not self.references:
            raise InputError("give a recording of the target speaker (--speaker-ref FILE): clips of other voices are left out by it")
        for ref in self.references:
            if not ref.is_file():
                raise InputError(f"speaker reference {ref} not found: give a recording of the target speaker (--speaker-ref FILE)")
        self.output = Path(output)
        if self.output.exists() and (not self.output.is_dir() or any(self.output.iterdir())):
            raise InputError(f"{self.output} already exists and is not empty: choose another -o")
        files.check_output(self.output, "-o", folder=True)
        self.work = self.output.with_name(self.output.name + ".partial")

    def run(self) -> PrepareResult:
        opts = self.options
        if not opts.language:
            from s3tvr.backends.language_id import detect_language

            opts.language = detect_language(load_audio(self.references[0]))
            if opts.language not in XTTS_CODES:
                raise InputError(f"the reference is in {opts.language!r}, which XTTS v2 does not speak: give --lang LANG")
        self.config = dataclasses.replace(self.config, src_lang=opts.language, tgt_lang=opts.language)
        with Engine(self.config, kinds=("asr",)) as self.engine:
            return self._prepare()

    def _prepare(self) -> PrepareResult:
        self._setup()
        (self.work / "wavs").mkdir(parents=True, exist_ok=True)
        clips: list[Clip] = []
        for n, path in enumerate(self.files, 1):
            clips += self._file(path, f"{n}/{len(self.files)} {path.name}"[:28])
        kept = [c for c in clips if c.reason is None]
        result = self._write(clips, kept)
        shutil.rmtree(self.output, ignore_errors=True)  # an empty folder the user made
        self.work.replace(self.output)
        result.folder = self.output
        return result

    # -- models ---------------------------------------------------------------------------------

    def _setup(self) -> None:
        import noisereduce

        self._nr = noisereduce
        self.encoder = SpeakerEncoder(self.config.device, extra="finetune")
        self.encoder.setup()
        vad = dataclasses.replace(self.config.vad, endpoint_ms=300, long_after_s=6.0, long_endpoint_ms=150,
                                  max_segment_s=self.options.max_clip_s - 2 * PAD_S)
        self.vad = vad
        self.asr = self.engine.asr
        if not self.asr.word_times:
            raise InputError(f"ASR backend {self.asr.backend} gives no word probabilities: use faster-whisper or nemo")
        self.engine.load("vad", "asr")
        self.reference = self._reference_embedding()

    def _reference_embedding(self) -> np.ndarray:
        embeddings = [e for e in (self.encoder.embed(load_audio(r)) for r in self.references) if e is not None]
        if not embeddings:
            raise InputError("the speaker reference holds too little speech: give at least a few seconds of the target speaker")
        mean = np.mean(embeddings, axis=0)
        return mean / np.linalg.norm(mean)

    # -- one input file -------------------------------------------------------------------------

    def _file(self, path: Path, label: str) -> list[Clip]:
        key = self._key(path)
        done = self.work / f"{key}.json"
        if done.is_file():  # finished in an earlier, interrupted run
            return [Clip(**c) for c in json.loads(done.read_text())]
        channels, rate = decode(path)
        clipped_at = np.abs(channels).max(axis=0) >= 0.999  # full scale on any channel
        mono = channels.mean(axis=0)
        audio16 = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32) if rate != SAMPLE_RATE else mono
        audio = soxr.resample(mono, rate, RATE, quality="HQ").astype(np.float32) if rate != RATE else mono
        total_s = len(mono) / rate
        regions = speech_regions(audio16, self.vad, self.engine.vad_model())
        gaps = self._gaps(regions, total_s)
        spans = cut_clips(regions, total_s, self.options)
        tick = self.progress.stage(label, len(spans))
        clips = []
        for n, (start, end) in enumerate(spans):
            clip = Clip(str(path), round(start, 3), round(end, 3))
            self._check(clip, audio16, audio, clipped_at[int(start * rate):int(end * rate)], self._noise_near(audio, gaps, start, end),
                        f"wavs/{files.safe_name(path.stem)[:40]}-{key[:6]}-{n:04d}.wav")
            clips.append(clip)
            tick()
        files.write_json(done, [dataclasses.asdict(c) for c in clips])
        log.info("%s: %d of %d clips kept", path.name, sum(c.reason is None for c in clips), len(clips))
        return clips

    def _check(self, clip: Clip, audio16: np.ndarray, audio: np.ndarray, clipped: np.ndarray, noise: np.ndarray,
               name: str) -> None:
        """Cheapest test first; the clip is written only when it passes all."""
        opts = self.options
        if clip.duration < opts.min_clip_s:
            clip.reason = "too short"
            return
        if clip.duration > opts.max_clip_s + 0.01:
            clip.reason = "too long (no pause to cut at)"
            return
        if clipped.mean() > opts.max_clipped:
            clip.reason = "clipped"
            return
        samples = audio[int(clip.start * RATE):int(clip.end * RATE)]
        speech16 = audio16[int(clip.start * SAMPLE_RATE):int(clip.end * SAMPLE_RATE)]
        voice16 = speech16
        # Without pauses to measure the noise in (recordings cut tight), SNR is unknown and the
        # denoiser could only guess (non-stationary gating removed 2.4-3.7 dB of clean LJSpeech speech):
        # such clips are kept as recorded.
        if len(noise) >= MIN_PROFILE_S * RATE:
            clip.snr_db = round(min(clip_snr_db(samples, noise, RATE), 99.0), 1)
            if clip.snr_db < opts.min_snr_db:
                clip.reason = "too noisy"
                return
            if opts.denoise:
                cleaned = denoise(self._nr, samples, noise, opts.denoise_strength, RATE, opts.denoise_n_std)
                clip.speech_loss_db = round(speech_loss_db(samples, cleaned, noise, RATE), 2)
                if clip.speech_loss_db > opts.max_speech_loss_db:
                    clip.reason = "denoising removed speech"
                    return
                # The voice is compared on a more strongly denoised copy: noise pulls every voice's
                # embedding towards it, and speech lost there does not matter (on the test's mix it
                # separated her from the other voices more widely than the gently denoised copy).
                voice16 = soxr.resample(denoise(self._nr, samples, noise, 0.75, RATE), RATE, SAMPLE_RATE, quality="HQ")
                samples = cleaned
                speech16 = soxr.resample(cleaned, RATE, SAMPLE_RATE, quality="HQ").astype(np.float32)
        embedding = self.encoder.embed(voice16.astype(np.float32))
        if embedding is None:
            clip.reason = "too little speech"
            return
        clip.similarity = round(float(np.dot(embedding, self.reference)), 3)
        if clip.similarity < opts.threshold:
            clip.reason = "other speaker"
            return
        words = self.asr.words(speech16)
        if not words:
            clip.reason = "no words recognised"
            return
        clip.text = " ".join(w.text for w in words).replace("|", " ").strip()
        clip.confidence = round(float(np.mean([w.probability for w in words])), 3)
        if clip.confidence < opts.min_confidence:
            clip.reason = "low ASR confidence"
            return
        if sum(w.end - w.start for w in words) < opts.min_speech_share * clip.duration:
            clip.reason = "too little speech"
            return
        samples, _ = match_loudness(samples, RATE, opts.loudness_lufs)
        peak = float(np.abs(samples).max())
        if peak > 0.89:  # -1 dBFS ceiling: quieter rather than clipped
            samples = samples * (0.89 / peak)
        files.write_wav(self.work / name, samples.astype(np.float32), RATE)
        clip.file = name

    @staticmethod
    def _gaps(regions: list[tuple[float, float]], total_s: float) -> list[tuple[float, float]]:
        """The recording's pauses (no speech), a little away from the speech around them."""
        gaps, last = [], 0.0
        for start, end in [*regions, (total_s, total_s)]:
            if start - last > 0.2:
                gaps.append((last + 0.05, start - 0.05))
            last = max(last, end)
        return gaps

    @staticmethod
    def _noise_near(audio: np.ndarray, gaps: list[tuple[float, float]], start: float, end: float, seconds: float = 3.0) -> np.ndarray:
        """The noise profile for a clip: the pauses nearest to it, up to ``seconds`` (noise changes
        along a recording: a kitchen, then a quiet room)."""
        parts, total = [], 0.0
        for n, (gs, ge) in enumerate(sorted(gaps, key=lambda g: max(g[0] - end, start - g[1], 0.0))):
            if n and max(gs - end, start - ge) > 5.0:  # the nearest pause always; others only when close
                break
            parts.append(audio[int(gs * RATE):int(ge * RATE)])
            total += ge - gs
            if total >= seconds:
                break
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _key(self, path: Path) -> str:
        settings = dataclasses.asdict(self.options)
        settings.update(asr=self.config.asr.backend, asr_options=self.config.asr.options, refs=[files.file_key(r) for r in self.references])
        return hashlib.sha1(json.dumps([files.file_key(path), settings], sort_keys=True, default=str).encode()).hexdigest()[:16]

    # -- the dataset ----------------------------------------------------------------------------

    def _write(self, clips: list[Clip], kept: list[Clip]) -> PrepareResult:
        from s3tvr.finetune.report import histogram, summary

        evals = (kept[self.options.eval_every - 1::self.options.eval_every] or kept[-1:]) if len(kept) >= 2 else []
        train = [c for c in kept if c not in evals]
        for name, part in (("metadata_train.csv", train), ("metadata_eval.csv", evals)):
            rows = ["audio_file|text|speaker_name"] + [f"{c.file}|{c.text}|{self.options.speaker_name}" for c in part]
            files.write_text(self.work / name, "\n".join(rows) + "\n")
        report = summary(clips, train, evals, self.options, [str(p) for p in self.files], [str(r) for r in self.references])
        histogram(clips, self.work / "lengths.png")
        files.write_json(self.work / DATASET_FILE, report)
        for done in self.work.glob("*.json"):
            if done.name != DATASET_FILE:
                done.unlink()
        return PrepareResult(self.work, report, clips)
