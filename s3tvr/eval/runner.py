"""``s3tvr eval``: run the system on every clip of a manifest folder and measure it.

Per clip: the translation is spoken to a file, a judge ASR of the target language transcribes it
(ASR-BLEU, as Seamless and Hibiki report), the text translation and the source transcript are
scored too (so users see which stage loses quality), and a speaker encoder compares the voice of
input and output. Every clip is one session over one engine, so each model loads once; speed
comes from the sessions' latency logs, memory from that one load and the process's peak.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import resource
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from s3tvr import files
from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import load_audio
from s3tvr.backends import registry
from s3tvr.backends.voice_similarity import SpeakerEncoder
from s3tvr.config import BackendSection, load_config
from s3tvr.errors import InputError
from s3tvr.eval import metrics
from s3tvr.latency.field_metrics import end_part_figures, field_figures, source_latencies
from s3tvr.latency.record import UtteranceRecord
from s3tvr.live.engine import Engine
from s3tvr.live.messages import DROPPED_TAIL

log = logging.getLogger(__name__)

REFERENCE_KEYS = {"en": "ref_eng", "es": "ref_spa", "ru": "ref_rus"}


@dataclass
class ClipResult:
    audio: str
    duration_s: float
    reference: str  # the reference translation
    source_reference: str  # the reference transcript
    source_text: str  # what the ASR heard in the source language
    translation: str  # the system's text translation
    heard: str  # the judge ASR's transcript of the spoken translation
    bleu: float  # sentence BLEU of ``heard``
    speaker_similarity: Optional[float]  # None when nothing was spoken
    utterances: int
    peak_rss_mb: float  # the process's peak resident memory once this clip's run ended
    errors: list[str] = field(default_factory=list)


@dataclass
class EvalResult:
    pair: str
    clips: list[ClipResult]
    asr_bleu: dict[str, Any]
    text_bleu: dict[str, Any]
    source_wer: Optional[float]
    source_wer_how: str
    speaker_similarity: Optional[float]
    latency: dict[str, Any]
    memory: dict[str, Any]
    judge: str
    normalisation: str = metrics.NORMALISATION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_manifest(folder: Path, src: str, tgt: str) -> list[dict[str, Any]]:
    path = folder / "manifest.jsonl"
    if not path.is_file():
        raise InputError(f"{folder} has no manifest.jsonl: give a folder in the format of shared/data/speech/fleurs")
    if tgt not in REFERENCE_KEYS:
        raise InputError(f"no reference translations for target {tgt}: choose one of {', '.join(REFERENCE_KEYS)}")
    clips = []
    for n, clip in files.read_jsonl(path, "a JSON Lines manifest, one clip's JSON object per line"):
        if not isinstance(clip, dict) or not isinstance(clip.get("audio"), str):
            raise InputError(f"{path} line {n} is not a clip: each line needs at least \"audio\" and \"lang\"")
        clips.append(clip)
    clips = [c for c in clips if c.get("lang") == src]
    if not clips:
        raise InputError(f"{path} has no clips in {src}: choose a --pair whose source language it holds")
    missing = [c["audio"] for c in clips if not isinstance(c.get(REFERENCE_KEYS[tgt]), str) or not c[REFERENCE_KEYS[tgt]]]
    if missing:
        raise InputError(f"{path}: {missing[0]} has no {REFERENCE_KEYS[tgt]} reference")
    absent = [c["audio"] for c in clips if not (folder / c["audio"]).is_file()]
    if absent:
        raise InputError(f"{path} names {absent[0]}, which is not in {folder}: fix the manifest or add the clip")
    return clips


def _cpu_s() -> float:
    """CPU seconds this process and its finished children (espeak-ng, a stopped Apertium) have used."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def model_memory(engine: Engine) -> dict[str, float]:
    """Resident memory (and CUDA memory) each model added when the engine loaded it, in MiB."""
    out: dict[str, float] = {}
    for name, load in engine.loads.items():
        out[f"{name}_rss_mb"] = load["rss_mb"]
        if "cuda_mb" in load:
            out[f"{name}_cuda_mb"] = load["cuda_mb"]
    return out


class _Judge:
    """Whisper (the faster-whisper backend, greedy) transcribes what the system said in
    ``language``, a whole recording at a time (so with timestamp tokens); Resemblyzer compares voices."""

    def __init__(self, model: str, language: str, device: str):
        options = {"model": model, "timestamps": True}
        self.asr = registry.create("asr", BackendSection("faster-whisper", options), src_lang=language,
                                   tgt_lang=language, device=device)
        self.asr.setup()
        self.voice = SpeakerEncoder(device, extra="eval")
        self.voice.setup()

    def transcribe(self, audio: np.ndarray) -> str:
        if len(audio) == 0 or float(np.abs(audio).max()) < 1e-4:
            return ""
        return self.asr.transcribe(audio, self.asr.src_lang)

    def embed(self, audio: np.ndarray) -> Optional[np.ndarray]:
        return self.voice.embed(audio)


def evaluate(data: str | Path, pair: str, config: Optional[str] = None, overrides: Optional[list[str]] = None,
             realtime: bool = True, judge_model: str = "bundled:base", device: Optional[str] = None,
             dtype: Optional[str] = None, work_dir: Optional[str | Path] = None) -> EvalResult:
    try:
        src, tgt = pair.split("-")
    except ValueError:
        raise InputError(f"--pair must look like es-en, not {pair!r}") from None
    folder = Path(data)
    if not folder.is_dir():
        raise InputError(f"data folder {folder} not found: give a folder with manifest.jsonl and its clips")
    clips = read_manifest(folder, src, tgt)
    cfg = load_config(config or "offline", overrides, src_lang=src, tgt_lang=tgt, device=device, dtype=dtype)
    cfg = dataclasses.replace(cfg, audio=dataclasses.replace(cfg.audio, realtime=realtime))
    with Engine(cfg) as engine:
        return _evaluate(engine, folder, clips, pair, judge_model, work_dir)


def _evaluate(engine: Engine, folder: Path, clips: list[dict[str, Any]], pair: str, judge_model: str,
              work_dir: Optional[str | Path]) -> EvalResult:
    cfg, (src, tgt) = engine.config, pair.split("-")
    engine.setup()
    memory = model_memory(engine)
    # When the system translates as it listens, its own ASR's words give the source transcript.
    translating = engine.asr.output_language != src
    wer_how = ("the system's ASR model's source-language words (it translates while running)" if translating
               else "the system's ASR transcript")

    runs: list[tuple[dict, Path, list[UtteranceRecord], float]] = []
    records: list[UtteranceRecord] = []
    audio_s = 0.0
    cpu_before = _cpu_s()
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for n, clip in enumerate(clips):
            wav = folder / clip["audio"]
            out = Path(tmp) / f"{n:04d}.wav"
            log.info("clip %d/%d: %s", n + 1, len(clips), clip["audio"])
            result = engine.session(input=str(wav), output=str(out)).run()
            runs.append((clip, out, result.records, round(_peak_rss_mb(), 1)))
            records += result.records
            audio_s += clip.get("duration_s") or len(load_audio(wav)) / SAMPLE_RATE
        cpu_s = _cpu_s() - cpu_before  # the system's runs only, not the judge's
        memory["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        if cfg.device == "cuda":
            import torch

            memory["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)

        judge = _Judge(judge_model, tgt, cfg.device)
        results = []
        for clip, out, recs, peak in runs:
            source = load_audio(folder / clip["audio"])
            said = _read_output(out)
            heard = judge.transcribe(said)
            kept = [r for r in recs if r.skipped != DROPPED_TAIL]  # a tail dropped when the speaker went on was never said
            src_text = " ".join(r.src_text for r in kept if r.src_text)
            if translating:
                src_text = _transcribe_clip(engine.asr, source)
            translation = " ".join(r.tgt_text for r in kept if r.tgt_text)
            a, b = judge.embed(source), judge.embed(said) if heard else None
            results.append(ClipResult(
                audio=clip["audio"], duration_s=round(len(source) / SAMPLE_RATE, 2), reference=clip[REFERENCE_KEYS[tgt]],
                source_reference=clip.get("transcript_fleurs_normalized") or clip.get("transcript", ""),
                source_text=src_text, translation=translation, heard=heard,
                bleu=metrics.sentence_bleu(heard, clip[REFERENCE_KEYS[tgt]]),
                speaker_similarity=None if a is None or b is None else metrics.cosine(a, b),
                utterances=len(recs), peak_rss_mb=peak, errors=[r.error for r in recs if r.error],
            ))
    refs = [c.reference for c in results]
    sims = [c.speaker_similarity for c in results if c.speaker_similarity is not None]
    vad = cfg.vad
    latency = metrics.latency_figures(records, vad.endpoint_ms / 1000, vad.long_endpoint_ms / 1000,
                                      vad.long_after_s + vad.preroll_ms / 1000, audio_s)
    sources = source_latencies(records)  # the field's metrics: StartOffset, EndOffset, first audio, LAAL, YAAL
    latency["field"] = field_figures(sources)
    latency["end_parts"] = end_part_figures(sources)  # EndOffset's parts: what a change to the end moves
    # What the machine pays, whatever its cores: 2.0 means two cores busy for each second heard.
    latency["cpu_s_per_audio_s"] = cpu_s / audio_s if audio_s > 0 else math.nan
    latency["mt_fallbacks"] = sum(1 for r in records if r.mt_note.startswith("fallback"))  # the translator's reply refused or late
    latency["field_per_source"] = [dataclasses.asdict(s) for s in sources]
    return EvalResult(
        pair=pair, clips=results,
        asr_bleu=metrics.bleu_chrf([c.heard for c in results], refs),
        text_bleu=metrics.bleu_chrf([c.translation for c in results], refs),
        source_wer=metrics.wer([c.source_reference for c in results], [c.source_text for c in results]),
        source_wer_how=wer_how,
        speaker_similarity=float(np.mean(sims)) if sims else None,
        latency=latency,
        memory=memory, judge=f"faster-whisper {judge_model}",
    )


def _read_output(path: Path) -> np.ndarray:
    """The spoken translation at 16 kHz; empty when nothing was said."""
    import soundfile as sf

    if not path.exists() or sf.info(path).frames == 0:
        return np.zeros(0, np.float32)
    return load_audio(path)


def _transcribe_clip(asr: Any, audio: np.ndarray) -> str:
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak < 1e-5 or not asr.word_times:
        return ""
    return " ".join(w.text for w in asr.words(audio * (0.9 / peak)))
