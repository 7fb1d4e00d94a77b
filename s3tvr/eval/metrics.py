"""Metric code, small enough to check by hand: WER, BLEU/chrF, speaker similarity, latency figures."""

from __future__ import annotations

import math
import statistics
from typing import Any, Optional, Sequence

import numpy as np

from s3tvr.latency.percentile import percentile
from s3tvr.latency.record import UtteranceRecord

NORMALISATION = "lowercase, punctuation removed, whitespace collapsed"


def normalise(text: str) -> str:
    import jiwer

    return jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()])(text)


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> Optional[float]:
    """Corpus word error rate after :data:`NORMALISATION`; None when the references hold no words."""
    import jiwer

    pairs = [(normalise(r), normalise(h)) for r, h in zip(references, hypotheses, strict=True) if normalise(r)]
    if not pairs:
        return None
    words = sum(len(r.split()) for r, _ in pairs)
    errors = 0
    for ref, hyp in pairs:
        if not hyp:  # nothing recognised: every reference word is deleted
            errors += len(ref.split())
        else:
            out = jiwer.process_words(ref, hyp)
            errors += out.substitutions + out.deletions + out.insertions
    return errors / words


def bleu_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Corpus BLEU and chrF (sacrebleu defaults) with their signatures."""
    import sacrebleu

    bleu, chrf = sacrebleu.BLEU(), sacrebleu.CHRF()
    refs = [list(references)]
    b = bleu.corpus_score(list(hypotheses), refs)
    c = chrf.corpus_score(list(hypotheses), refs)
    return {"bleu": b.score, "chrf": c.score, "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature())}


def sentence_bleu(hypothesis: str, reference: str) -> float:
    import sacrebleu

    return sacrebleu.sentence_bleu(hypothesis, [reference]).score


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else 0.0


def latency_figures(records: Sequence[UtteranceRecord], endpoint_s: float, long_endpoint_s: float, long_after_s: float,
                    audio_s: float) -> dict[str, Any]:
    """Speed from latency-log records: end of speech -> first audio, per-stage compute, real-time
    factor (stage compute / audio duration) and the overhead ratio latency / (endpoint + compute)."""
    spoken = [r for r in records if r.latency_s is not None]
    lat = [r.latency_s for r in spoken]
    stages: dict[str, list[float]] = {}
    compute_total = 0.0
    ratios = []
    for r in records:
        sc = r.stage_compute()
        for name, sec in sc.items():
            stages.setdefault(name, []).append(sec)
        compute_total += sum(s.end - s.start for s in r.stages.values() if s.end is not None)
        if r.latency_s is not None:
            long = r.seg_end_s - r.seg_start_s >= long_after_s
            ratios.append(r.latency_s / ((long_endpoint_s if long else endpoint_s) + sum(sc.values())))
    nan = math.nan
    return {
        "utterances": len(records), "spoken": len(spoken),
        "p50_s": percentile(lat, 50), "p90_s": percentile(lat, 90), "max_s": max(lat) if lat else nan,
        "mean_s": statistics.fmean(lat) if lat else nan,
        "stage_mean_s": {n: statistics.fmean(v) for n, v in stages.items()},
        "rtf": compute_total / audio_s if audio_s > 0 else nan,
        "overhead_p50": percentile(ratios, 50), "overhead_p90": percentile(ratios, 90),
        "latencies_s": lat,
    }
