"""The latency log: one JSON object per utterance, appended and flushed as each finishes.

The collector at the end of the chain is the only writer. ``s3tvr report`` reads a log back
into the table speech translation systems are compared by (the original S3TVR's average, best
and worst per language, plus p50/p90 and per-stage means), and draws it. Beside it, the latency
the simultaneous translation field reports, per source utterance (the clauses of simultaneous
mode grouped by their ``source_id``; a sentence-mode utterance is its own source):

* StartOffset: the first translated audio heard - the start of the source speech (SimulEval's).
* EndOffset: the end of the last translated audio heard - the end of the source speech (SimulEval's).
* first audio: the first audio of its last spoken clause - the end of the source speech (in
  sentence mode, ``latency_s``: end of speech -> first translated audio).
* LAAL and YAAL, computed by OmniSTEval's scorers (:func:`omnisteval_lags`) with each target word
  timed when the listener has heard it whole (its text spread over its audio by characters: an
  estimate, no forced alignment), from the start of the source speech, over the source speech's
  length. One instance per source utterance, as IWSLT's speech-to-speech evaluations score one
  per (re)segmented sentence; YAAL is the long-form variant with no recording end, so every word
  heard counts (the audio here is timed as played, not emitted at once as in a simulation).
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
from s3tvr.errors import InputError, SetupError
from s3tvr.messages import UttInfo

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
        lines.append(f"{s.pair:<7}" + "  ".join(parts))
    lines += ["", *format_field(summaries)]
    return "\n".join(lines)


def format_field(summaries: list[PairSummary]) -> list[str]:
    """The field's metrics per pair, one row each (the lines of :func:`format_table`'s second table)."""
    lines = ["as the field reports it, per source utterance (s): StartOffset = speech start -> first audio, "
             "EndOffset = speech end -> end of its audio,",
             "first audio = speech end -> first audio of its last clause (sentence mode: the table above), "
             f"LAAL and YAAL by OmniSTEval {_omnisteval_version()} on words timed as heard",
             f"{'pair':<7}{'metric':<13}{'n':>5}{'p50':>8}{'mean':>8}{'p90':>8}"]
    for s in summaries:
        for name in FIELD_METRICS:
            m = s.field_metrics.get(name, {"n": 0, "p50": math.nan, "mean": math.nan, "p90": math.nan})
            lines.append(f"{s.pair:<7}{name:<13}{m['n']:>5}" + "".join(f"{_num(m[k]):>8}" for k in ("p50", "mean", "p90")))
    return lines


def _num(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.2f}"


# -- the field's metrics ---------------------------------------------------------------------

FIELD_METRICS = ("StartOffset", "EndOffset", "first audio", "LAAL", "YAAL")
_CHARACTER_UNITS = ("zh", "ja")  # languages written without spaces: latency counts characters (as OmniSTEval's)


@dataclass
class SourceLatency:
    """One source utterance's latency as the field measures it, in seconds (None: not measurable)."""

    pair: str
    source_id: Any
    utterances: int  # its log records: itself in sentence mode, its clauses in simultaneous mode
    words: int  # target words (characters for zh/ja) heard
    source_s: Optional[float]  # the source speech's length: its first speech sample to its last
    start_offset: Optional[float]
    end_offset: Optional[float]
    first_audio: Optional[float]
    laal: Optional[float]
    yaal: Optional[float]

    def metric(self, name: str) -> Optional[float]:
        return {"StartOffset": self.start_offset, "EndOffset": self.end_offset, "first audio": self.first_audio,
                "LAAL": self.laal, "YAAL": self.yaal}[name]


def played_chunks(rec: dict[str, Any]) -> list[tuple[float, float]]:
    """The record's audio as heard, (start, seconds) per chunk. A log from before ``played`` was
    written is read as one chunk from ``t_first_audio`` (or ``t_speech_end + latency_s``) to
    ``t_play_end`` (or for ``out_dur_s``); seconds NaN when neither says how long it was."""
    if "played" in rec:
        return [(float(t), float(sec)) for t, sec in rec["played"]]
    start = rec.get("t_first_audio")
    if start is None and rec.get("latency_s") is not None and rec.get("t_speech_end") is not None:
        start = rec["t_speech_end"] + rec["latency_s"]
    if start is None:
        return []
    end, dur = rec.get("t_play_end"), rec.get("out_dur_s")
    return [(start, end - start if end is not None else dur if dur is not None else math.nan)]


def word_delays(rec: dict[str, Any]) -> list[float]:
    """When each word of the record's ``tgt_text`` had been heard whole (wall clock): the words
    spread over its played audio in proportion to their characters (no forced alignment)."""
    chunks = played_chunks(rec)
    text = rec.get("tgt_text") or ""
    units = list(text.replace(" ", "")) if rec.get("tgt_lang", "").startswith(_CHARACTER_UNITS) else text.split()
    if not units or not chunks or not all(math.isfinite(sec) for _, sec in chunks):
        return []
    total, chars = sum(sec for _, sec in chunks), sum(len(u) for u in units)
    delays, heard, k, chunk_from = [], 0, 0, 0.0  # chunk_from: audio seconds before chunk k
    for unit in units:
        heard += len(unit)
        at = total * heard / chars  # where in the audio the word ends
        while k < len(chunks) - 1 and at > chunk_from + chunks[k][1] + 1e-9:
            chunk_from += chunks[k][1]
            k += 1
        delays.append(chunks[k][0] + min(at - chunk_from, chunks[k][1]))
    return delays


def omnisteval_lags(delays_s: list[float], source_s: float) -> tuple[Optional[float], Optional[float]]:
    """LAAL and YAAL of one source utterance by OmniSTEval's scorers: ``delays_s``, when each target
    word was heard, in seconds from the start of the source speech; ``source_s``, its length. No
    reference: the target length is the words heard. YAAL is the long-form one (LongYAAL) with no
    recording end; OmniSTEval's shortform YAAL would drop every utterance of sentence mode, whose
    words all come after its source ends. None where a scorer skips the instance."""
    try:
        from omnisteval.data import Instance
        from omnisteval.scoring import LAALScorer, YAALScorer
    except ImportError:
        raise SetupError("LAAL and YAAL are computed with OmniSTEval: pip install 'omnisteval>=0.1.10'") from None
    ins = Instance(reference=None, source_length=source_s * 1000, emission_cu=[d * 1000 for d in delays_s], longform=True)
    laal, yaal = LAALScorer().compute(ins), YAALScorer(is_longform=True).compute(ins)  # milliseconds, as SimulEval's
    return (None if laal is None else laal / 1000), (None if yaal is None else yaal / 1000)


def _omnisteval_version() -> str:
    try:
        from importlib.metadata import version

        return version("omnisteval")
    except Exception:
        return "(not installed)"


def source_latencies(records: Iterable[dict[str, Any]]) -> list[SourceLatency]:
    """Each source utterance's figures, in log order. Records group by session (``t0_unix``,
    ``t0_mono``: ids restart in each), pair and ``source_id`` (missing: the record's own ``utt_id``,
    a log from before simultaneous mode)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for n, rec in enumerate(records):
        pair = f"{rec['src_lang']}-{rec['tgt_lang']}"
        source = rec.get("source_id", rec.get("utt_id", f"line {n + 1}"))
        groups.setdefault((pair, rec.get("t0_unix"), rec.get("t0_mono"), source), []).append(rec)
    out = []
    for (pair, _, _, source), recs in groups.items():
        chunks = [c for r in recs for c in played_chunks(r)]
        starts = [r["t_speech_start"] for r in recs if r.get("t_speech_start") is not None]
        t_start = starts[0] if starts else None
        last = [r for r in recs if r.get("last_clause", True)]  # None yet: the run stopped while it was spoken
        t_end = last[-1].get("t_speech_end") if last else None
        spoken = [r for r in recs if played_chunks(r)]
        heard_until = max(t + sec for t, sec in chunks) if chunks else math.nan
        delays = [d for r in spoken for d in word_delays(r)]
        source_s = t_end - t_start if t_start is not None and t_end is not None else None
        laal = yaal = None
        if delays and source_s is not None and source_s > 0:
            laal, yaal = omnisteval_lags([d - t_start for d in delays], source_s)
        out.append(SourceLatency(
            pair=pair, source_id=source, utterances=len(recs), words=len(delays), source_s=source_s,
            start_offset=chunks[0][0] - t_start if chunks and t_start is not None else None,
            end_offset=heard_until - t_end if t_end is not None and math.isfinite(heard_until) else None,
            first_audio=played_chunks(spoken[-1])[0][0] - t_end if spoken and t_end is not None else None,
            laal=laal, yaal=yaal,
        ))
    return out


def field_figures(sources: list[SourceLatency]) -> dict[str, dict[str, float]]:
    """Median, mean and p90 of each of the field's metrics over the source utterances that have it
    (the mean of LAAL and YAAL is OmniSTEval's system score: it averages its instances)."""
    out = {}
    for name in FIELD_METRICS:
        values = [v for v in (s.metric(name) for s in sources) if v is not None]
        out[name] = {"n": len(values), "p50": percentile(values, 50), "mean": statistics.fmean(values) if values else math.nan,
                     "p90": percentile(values, 90)}
    return out


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
