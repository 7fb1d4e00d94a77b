"""The latency log: one JSON object per utterance, appended and flushed as each finishes.

The collector at the end of the chain is the only writer. ``s3tvr report`` reads a log back
into the table speech translation systems are compared by (the original S3TVR's average, best
and worst per language, plus p50/p90 and per-stage means), and draws it, beside the latency the
simultaneous translation field reports (:mod:`s3tvr.field_latency`).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, TextIO

from s3tvr import files
from s3tvr.errors import InputError
from s3tvr.field_latency import FIELD_METRICS, SourceLatency, field_figures, omnisteval_version, source_latencies
from s3tvr.live.messages import UttInfo

log = logging.getLogger(__name__)

STAGE_ORDER = ("denoise", "asr", "mt", "tts")


def to_record(utt: UttInfo, clock: "Clock") -> dict[str, Any]:
    """The log line for one utterance (DESIGN.md's format)."""
    latency = None if utt.t_first_audio is None else utt.t_first_audio - utt.t_speech_end
    return {
        "utt_id": utt.utt_id,
        "src_lang": utt.src_lang,
        "tgt_lang": utt.tgt_lang,
        "seg_start_s": round(utt.seg_start_s, 3),
        "seg_end_s": round(utt.seg_end_s, 3),
        "t_speech_end": utt.t_speech_end,
        "t_vad_emit": utt.t_vad_emit,
        "stages": {name: {"start": s.start, "end": s.end, "first_out": s.first_out, "backend": s.backend}
                   for name, s in utt.stages.items()},
        "source_id": utt.utt_id if utt.source_id is None else utt.source_id,
        "last_clause": utt.last_clause,
        "t_speech_start": utt.t_speech_start,
        "t_first_audio": utt.t_first_audio,
        "t_play_end": utt.t_play_end,
        "played": [[round(t, 4), round(sec, 4)] for t, sec in utt.played],
        "latency_s": None if latency is None else round(latency, 4),
        "src_text": utt.src_text,
        "tgt_text": utt.tgt_text,
        "out_dur_s": round(utt.out_dur_s, 3),
        "rate": round(utt.rate, 3),  # the speaking rate lag control asked of the TTS (1.0: natural)
        "asr_pacing": utt.asr_pacing,  # simultaneous passes slowed or stopped to keep pace ("": neither)
        "error": utt.error,
        "skipped": utt.skipped,
        "t0_unix": clock.t0_unix,
        "t0_mono": clock.t0_mono,
    }


@dataclass
class Clock:
    """Maps the monotonic clock of a run to dates: unix = t0_unix + (t - t0_mono)."""

    t0_mono: float = field(default_factory=time.monotonic)
    t0_unix: float = field(default_factory=time.time)


class Collector:
    """Writes one line per finished utterance, flushed at once, so a crash loses nothing finished.
    The file is created with the first line: a run that ends before any utterance leaves none."""

    def __init__(self, path: Optional[str | Path], clock: Optional[Clock] = None, keep: bool = True):
        self.path = Path(path) if path else None
        self.keep = keep  # False for endless runs: memory stays flat, the log file has everything
        self.clock = clock or Clock()
        self.records: list[dict[str, Any]] = []
        self._file: Optional[TextIO] = None
        self._lock = threading.Lock()

    def check(self) -> None:
        if self.path is not None:
            files.check_output(self.path, "--log")

    def record(self, utt: UttInfo) -> dict[str, Any]:
        rec = to_record(utt, self.clock)
        with self._lock:
            if self.keep:
                self.records.append(rec)
            if self.path is not None:
                if self._file is None:
                    self._file = open(self.path, "a", encoding="utf-8")
                self._file.write(json.dumps(rec, ensure_ascii=False) + "\n")
                self._file.flush()
        return rec

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a latency log, each checked to have what the report reads."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder: give the latency log file written by s3tvr run --log")
    if not path.is_file():
        raise InputError(f"latency log {path} not found: give the file written by s3tvr run --log")
    records = []
    for n, rec in files.read_jsonl(path, "the latency log written by s3tvr run --log"):
        problem = _log_record_problem(rec)
        if problem:
            raise InputError(f"{path} line {n} is not a latency record ({problem}): is this a latency log from s3tvr run?")
        records.append(rec)
    return records


def _log_record_problem(rec: Any) -> str:
    """What makes ``rec`` unreadable by the report ("" if nothing): the keys it needs, of the right types."""
    if not isinstance(rec, dict):
        return f"a JSON {type(rec).__name__}, not an object"
    for key in ("src_lang", "tgt_lang"):
        if not isinstance(rec.get(key), str):
            return f"no {key}"
    number = (int, float, type(None))
    for key in ("latency_s", "t_speech_end", "t_vad_emit", "t_speech_start", "t_first_audio", "t_play_end", "out_dur_s", "rate"):
        if isinstance(rec.get(key), bool) or not isinstance(rec.get(key), number):
            return f"{key} is not a number"
    played = rec.get("played", [])
    if not isinstance(played, list) or not all(
            isinstance(c, list) and len(c) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in c)
            for c in played):
        return "played is not a list of [start, seconds]"
    stages = rec.get("stages", {})
    if not isinstance(stages, dict) or not all(isinstance(s, dict) for s in stages.values()):
        return "stages is not a mapping of stages"
    if any(not isinstance(s.get(k), number) or isinstance(s.get(k), bool) for s in stages.values() for k in ("start", "end", "first_out")):
        return "a stage time is not a number"
    return ""


def stage_compute(rec: dict[str, Any]) -> dict[str, float]:
    """Seconds each stage spent on the utterance (until its first output for a streaming stage)."""
    out = {}
    for name, s in rec.get("stages", {}).items():
        stop = s.get("first_out") or s.get("end")
        if s.get("start") is not None and stop is not None:
            out[name] = stop - s["start"]
    return out


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


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
    # The field's metrics per source utterance: name -> {"n", "p50", "mean", "p90"} (field_figures)
    field_metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def summarize(records: Iterable[dict[str, Any]]) -> list[PairSummary]:
    records = list(records)
    by_pair: dict[str, list[dict[str, Any]]] = {}
    sources: dict[str, list[SourceLatency]] = {}
    for src in source_latencies(records):
        sources.setdefault(src.pair, []).append(src)
    for rec in records:
        by_pair.setdefault(f"{rec['src_lang']}-{rec['tgt_lang']}", []).append(rec)
    out = []
    for pair, recs in sorted(by_pair.items()):
        lat = [r["latency_s"] for r in recs if r.get("latency_s") is not None]
        stages: dict[str, list[float]] = {}
        for r in recs:
            for name, sec in stage_compute(r).items():
                stages.setdefault(name, []).append(sec)
        waits = [r["t_vad_emit"] - r["t_speech_end"] for r in recs if r.get("t_vad_emit") is not None]
        rates = [r.get("rate") or 1.0 for r in recs]  # logs written before lag control have none
        nan = float("nan")
        out.append(PairSummary(
            pair=pair, utterances=len(recs), spoken=len(lat), failed=sum(1 for r in recs if r.get("error")),
            mean=statistics.fmean(lat) if lat else nan, best=min(lat) if lat else nan, worst=max(lat) if lat else nan,
            p50=percentile(lat, 50), p90=percentile(lat, 90),
            stage_means={n: statistics.fmean(stages[n]) for n in STAGE_ORDER if n in stages},
            endpoint_wait=statistics.fmean(waits) if waits else nan,
            sped_up=sum(1 for r in rates if r > 1.0), top_rate=max(rates),
            asr_slowed=sum(1 for r in recs if r.get("asr_pacing") == "slowed"),
            asr_stopped=sum(1 for r in recs if r.get("asr_pacing") == "stopped"),
            field_metrics=field_figures(sources.get(pair, [])),
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
        lines.append(f"{s.pair:<7}" + "  ".join(parts))
    lines += ["", *format_field(summaries)]
    return "\n".join(lines)


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
    return lines


def _num(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.2f}"


def plot(records: list[dict[str, Any]], path: str | Path) -> None:
    """A PNG: latency distribution per pair, mean seconds per stage, and the field's metrics (medians)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summaries = summarize(records)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.2))
    for s in summaries:
        lat = [r["latency_s"] for r in records if f"{r['src_lang']}-{r['tgt_lang']}" == s.pair and r.get("latency_s") is not None]
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
