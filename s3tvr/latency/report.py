"""The latency report: ``s3tvr report`` reads a latency log (:mod:`s3tvr.latency.record`) back
into the table speech translation systems are compared by (the original S3TVR's average, best
and worst per language, plus p50/p90 and per-stage means), and draws it, beside the latency the
simultaneous translation field reports (:mod:`s3tvr.latency.field_metrics`).
"""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from s3tvr import files
from s3tvr.latency.field_metrics import (
    END_PARTS,
    FIELD_METRICS,
    SourceLatency,
    end_part_figures,
    field_figures,
    omnisteval_version,
    source_latencies,
)
from s3tvr.latency.percentile import percentile
from s3tvr.latency.record import UtteranceRecord

log = logging.getLogger(__name__)

STAGE_ORDER = ("denoise", "asr", "mt", "tts")


@dataclass
class PairSummary:
    pair: str
    utterances: int
    spoken: int
    failed: int
    mean: float
    best: float
    worst: float
    p50: float
    p90: float
    stage_means: dict[str, float]
    endpoint_wait: float  # mean seconds from speech end to the segmenter's release
    sped_up: int = 0  # utterances lag control spoke faster than natural
    top_rate: float = 1.0  # the fastest of them
    asr_slowed: int = 0  # simultaneous clauses whose passes ran less often than the step, to keep pace
    asr_stopped: int = 0  # ... and those recognised once their utterance had ended (passes cost too much)
    mt_fallbacks: int = 0  # utterances whose translator's reply was refused or late: its fallback translated them
    glossary_terms: int = 0  # glossary terms the translations render, all utterances together
    glossary_utterances: int = 0  # utterances with at least one
    # The field's metrics per source utterance: name -> {"n", "p50", "mean", "p90"} (field_figures)
    field_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # EndOffset's parts per source utterance: part -> {"n", "p50", "mean"} (end_part_figures)
    end_parts: dict[str, dict[str, float]] = field(default_factory=dict)


def summarize(records: Iterable[UtteranceRecord]) -> list[PairSummary]:
    records = list(records)
    by_pair: dict[str, list[UtteranceRecord]] = {}
    sources: dict[str, list[SourceLatency]] = {}
    for src in source_latencies(records):
        sources.setdefault(src.pair, []).append(src)
    for rec in records:
        by_pair.setdefault(rec.pair, []).append(rec)
    out = []
    for pair, recs in sorted(by_pair.items()):
        lat = [r.latency_s for r in recs if r.latency_s is not None]
        stages: dict[str, list[float]] = {}
        for r in recs:
            for name, sec in r.stage_compute().items():
                stages.setdefault(name, []).append(sec)
        waits = [r.t_vad_emit - r.t_speech_end for r in recs if r.t_vad_emit is not None]
        rates = [r.rate for r in recs]
        nan = float("nan")
        out.append(PairSummary(
            pair=pair, utterances=len(recs), spoken=len(lat), failed=sum(1 for r in recs if r.error),
            mean=statistics.fmean(lat) if lat else nan, best=min(lat) if lat else nan, worst=max(lat) if lat else nan,
            p50=percentile(lat, 50), p90=percentile(lat, 90),
            stage_means={n: statistics.fmean(stages[n]) for n in STAGE_ORDER if n in stages},
            endpoint_wait=statistics.fmean(waits) if waits else nan,
            sped_up=sum(1 for r in rates if r > 1.0), top_rate=max(rates),
            asr_slowed=sum(1 for r in recs if r.asr_pacing == "slowed"),
            asr_stopped=sum(1 for r in recs if r.asr_pacing == "stopped"),
            mt_fallbacks=sum(1 for r in recs if r.mt_note.startswith("fallback")),
            glossary_terms=sum(r.glossary_terms for r in recs), glossary_utterances=sum(1 for r in recs if r.glossary_terms),
            field_metrics=field_figures(sources.get(pair, [])), end_parts=end_part_figures(sources.get(pair, [])),
        ))
    return out


def format_table(summaries: list[PairSummary]) -> str:
    """The report as text: end of speech → first translated audio, in seconds."""
    head = f"{'pair':<7}{'utts':>5}{'spoken':>7}{'failed':>7}{'average':>9}{'best':>7}{'worst':>7}{'p50':>7}{'p90':>7}"
    lines = ["end of speech -> first translated audio (s)", head]
    for s in summaries:
        lines.append(f"{s.pair:<7}{s.utterances:>5}{s.spoken:>7}{s.failed:>7}{s.mean:>9.2f}{s.best:>7.2f}{s.worst:>7.2f}{s.p50:>7.2f}{s.p90:>7.2f}")
    lines.append("")
    lines.append("mean per stage (s): endpoint wait, then each stage's compute (to first output when streaming)")
    for s in summaries:
        parts = [f"endpoint {s.endpoint_wait:.2f}"] + [f"{n} {v:.2f}" for n, v in s.stage_means.items()]
        if s.sped_up:  # lag control: the log's "rate" says which and how much
            parts.append(f"sped up {s.sped_up} of {s.utterances} (up to {s.top_rate:.2f}x)")
        if s.asr_slowed or s.asr_stopped:  # simultaneous passes cost more than this machine affords
            parts.append(f"recognition slowed for {s.asr_slowed} and left to the end for {s.asr_stopped} of {s.utterances}")
        if s.mt_fallbacks:  # the log's "mt_note" says why, per utterance
            parts.append(f"translated by the fallback {s.mt_fallbacks} of {s.utterances}")
        lines.append(f"{s.pair:<7}" + "  ".join(parts))
    lines += format_glossary(summaries)
    lines += ["", *format_field(summaries)]
    return "\n".join(lines)


def format_glossary(summaries: list[PairSummary]) -> list[str]:
    """The glossary's line per pair where a session had one (the log's glossary_terms per utterance); none otherwise."""
    used = [s for s in summaries if s.glossary_terms]
    if not used:
        return []
    return ["", "glossary (--glossary): terms applied, and the utterances with a term"] + [
        f"{s.pair:<7}{s.glossary_terms} terms in {s.glossary_utterances} of {s.utterances} utterances" for s in used]


def format_field(summaries: list[PairSummary]) -> list[str]:
    """The field's metrics per pair, one row each (the lines of :func:`format_table`'s second table)."""
    lines = ["as the field reports it, per source utterance (s): StartOffset = speech start -> first audio, "
             "EndOffset = speech end -> end of its audio,",
             "first audio = speech end -> first audio of its last clause (sentence mode: the table above), "
             f"LAAL and YAAL by OmniSTEval {omnisteval_version()} on words timed as heard",
             f"{'pair':<7}{'metric':<13}{'n':>5}{'p50':>8}{'mean':>8}{'p90':>8}"]
    for s in summaries:
        for name in FIELD_METRICS:
            m = s.field_metrics.get(name, {"n": 0, "p50": math.nan, "mean": math.nan, "p90": math.nan})
            lines.append(f"{s.pair:<7}{name:<13}{m['n']:>5}" + "".join(f"{_num(m[k]):>8}" for k in ("p50", "mean", "p90")))
    lines += ["", "EndOffset's parts, speech end -> end of its audio (s; the means add up to EndOffset's mean): "
              + ", ".join(END_PARTS)]
    for s in summaries:
        for stat in ("p50", "mean"):
            parts = [f"{name} {_num(s.end_parts[name][stat])}" for name in END_PARTS if s.end_parts.get(name, {}).get("n")]
            if parts:
                lines.append(f"{s.pair:<7}{stat:<6}" + "  ".join(parts))
    return lines


def format_sources(records: Iterable[UtteranceRecord]) -> str:
    """One row per source utterance: where it ends in the input, its field metrics and EndOffset's parts."""
    head = f"{'pair':<7}{'source':>7}{'clauses':>8}{'ends at':>9}" + "".join(f"{n:>12}" for n in (*FIELD_METRICS, *END_PARTS))
    lines = ["per source utterance (s)", head]
    for src in source_latencies(records):
        parts = src.end_parts or {}
        lines.append(f"{src.pair:<7}{str(src.source_id):>7}{src.utterances:>8}{_num(src.seg_end_s):>9}"
                     + "".join(f"{_num(v):>12}" for v in (*(src.metric(n) for n in FIELD_METRICS),
                                                           *(parts.get(n) for n in END_PARTS))))
    return "\n".join(lines)


def _num(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.2f}"


def plot(records: list[UtteranceRecord], path: str | Path) -> None:
    """A PNG: latency distribution per pair, mean seconds per stage, and the field's metrics (medians)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summaries = summarize(records)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.2))
    for s in summaries:
        lat = [r.latency_s for r in records if r.pair == s.pair and r.latency_s is not None]
        if lat:
            ax1.hist(lat, bins=min(30, max(5, len(lat))), alpha=0.6, label=f"{s.pair} (p50 {s.p50:.2f} s)")
    ax1.set_xlabel("end of speech → first translated audio (s)")
    ax1.set_ylabel("utterances")
    ax1.set_title("Latency distribution")
    ax1.legend()
    names = ["endpoint", *STAGE_ORDER]
    width = 0.8 / max(1, len(summaries))
    for k, s in enumerate(summaries):
        values = [s.endpoint_wait] + [s.stage_means.get(n, 0.0) for n in STAGE_ORDER]
        ax2.bar([i + k * width for i in range(len(names))], values, width, label=s.pair)
    ax2.set_xticks([i + width * (len(summaries) - 1) / 2 for i in range(len(names))], names)
    ax2.set_ylabel("mean seconds")
    ax2.set_title("Where the time goes")
    ax2.legend()
    for k, s in enumerate(summaries):
        values = [s.field_metrics[n]["p50"] if s.field_metrics.get(n, {}).get("n") else 0.0 for n in FIELD_METRICS]
        ax3.bar([i + k * width for i in range(len(FIELD_METRICS))], values, width, label=s.pair)
    ax3.set_xticks([i + width * (len(summaries) - 1) / 2 for i in range(len(FIELD_METRICS))], FIELD_METRICS)
    ax3.set_ylabel("median seconds per source utterance")
    ax3.set_title("As the field reports it")
    ax3.legend()
    fig.tight_layout()
    files.write_png(path, fig)
    plt.close(fig)
