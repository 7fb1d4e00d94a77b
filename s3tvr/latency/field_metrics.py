"""The latency the simultaneous translation field reports, per source utterance (the clauses of
simultaneous mode grouped by their ``source_id``; a sentence-mode utterance is its own source):

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

EndOffset is broken into the parts of its critical path (:func:`end_offset_parts`), so a change
is judged by the part it moves.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from s3tvr.errors import SetupError
from s3tvr.latency.percentile import percentile
from s3tvr.latency.record import UtteranceRecord

FIELD_METRICS = ("StartOffset", "EndOffset", "first audio", "LAAL", "YAAL")
# EndOffset's parts, in the order they follow the end of the source speech (end_offset_parts):
END_PARTS = (
    "endpoint",  # -> the last recognition starts: the silence the segmenter waits for, and a pass still running
    "final pass",  # -> the last clause committed
    "mt",  # -> the first piece of the last spoken clause's translation
    "tts",  # -> its first chunk of speech
    "queued",  # -> that speech heard: the earlier clauses' audio still playing ahead of it
    "spoken",  # -> the end of the audio heard: the last clause's own length
)
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
    end_parts: Optional[dict[str, float]] = None  # EndOffset's parts (END_PARTS): they add up to it
    seg_end_s: Optional[float] = None  # where its speech ends on the input timeline (its last record's)

    def metric(self, name: str) -> Optional[float]:
        return {"StartOffset": self.start_offset, "EndOffset": self.end_offset, "first audio": self.first_audio,
                "LAAL": self.laal, "YAAL": self.yaal}[name]


def word_delays(rec: UtteranceRecord) -> list[float]:
    """When each word of the record's ``tgt_text`` had been heard whole (wall clock): the words
    spread over its ``played`` audio in proportion to their characters (no forced alignment)."""
    chunks, text = rec.played, rec.tgt_text
    units = list(text.replace(" ", "")) if rec.tgt_lang.startswith(_CHARACTER_UNITS) else text.split()
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


def omnisteval_version() -> str:
    try:
        from importlib.metadata import version

        return version("omnisteval")
    except Exception:
        return "(not installed)"


def _speech_end(recs: Sequence[UtteranceRecord]) -> Optional[float]:
    """The end of a source utterance's speech: its last clause's (None yet: the run stopped while it was spoken)."""
    last = [r for r in recs if r.last_clause]
    return last[-1].t_speech_end if last else None


def end_offset(recs: Sequence[UtteranceRecord]) -> Optional[float]:
    """EndOffset of one source utterance, its records given (its clauses; in sentence mode, the
    record itself): the end of the last translated audio heard - the end of the source speech;
    None if nothing was heard or its end is unknown."""
    chunks = [c for r in recs for c in r.played]
    t_end = _speech_end(recs)
    heard_until = max(t + sec for t, sec in chunks) if chunks else math.nan
    return heard_until - t_end if t_end is not None and math.isfinite(heard_until) else None


def end_offset_parts(recs: Sequence[UtteranceRecord]) -> Optional[dict[str, float]]:
    """EndOffset of one source utterance split along its critical path: from the end of the source
    speech, each milestone of END_PARTS in turn (the last clause's recognition starting and ending,
    then the last spoken clause's translation, first speech chunk, first audio heard, end of audio),
    each part the time by which that milestone comes later than all before it. The parts add up to
    the EndOffset; a milestone already passed (a clause translated while the speaker was still
    talking) costs 0. None when EndOffset is."""
    total, t_end = end_offset(recs), _speech_end(recs)
    if total is None or t_end is None:
        return None
    last = [r for r in recs if r.last_clause][-1]
    spoken = [r for r in recs if r.played][-1]
    started = [s.start for s in last.stages.values() if s.start is not None]
    asr = last.stages.get("asr")

    def first_out(stage: str) -> Optional[float]:
        timing = spoken.stages.get(stage)
        return None if timing is None else timing.first_out or timing.end

    milestones = [min(started) if started else None, asr.end if asr else None, first_out("mt"), first_out("tts"),
                  spoken.played[0][0], t_end + total]
    parts, reached = {}, t_end
    for name, at in zip(END_PARTS, milestones):
        later = max(reached, at) if at is not None else reached
        parts[name], reached = later - reached, later
    return parts


def source_latencies(records: Iterable[UtteranceRecord]) -> list[SourceLatency]:
    """Each source utterance's figures, in log order. Records group by session (``t0_unix``,
    ``t0_mono``: ids restart in each), pair and ``source_id`` (a log from before simultaneous mode:
    the record's own ``utt_id``, as :meth:`UtteranceRecord.from_json` reads it)."""
    groups: dict[tuple, list[UtteranceRecord]] = {}
    for rec in records:
        groups.setdefault((rec.pair, rec.t0_unix, rec.t0_mono, rec.source_id), []).append(rec)
    out = []
    for (pair, _, _, source), recs in groups.items():
        chunks = [c for r in recs for c in r.played]
        starts = [r.t_speech_start for r in recs if r.t_speech_start is not None]
        t_start = starts[0] if starts else None
        t_end = _speech_end(recs)
        spoken = [r for r in recs if r.played]
        delays = [d for r in spoken for d in word_delays(r)]
        source_s = t_end - t_start if t_start is not None and t_end is not None else None
        laal = yaal = None
        if delays and source_s is not None and source_s > 0:
            laal, yaal = omnisteval_lags([d - t_start for d in delays], source_s)
        out.append(SourceLatency(
            pair=pair, source_id=source, utterances=len(recs), words=len(delays), source_s=source_s,
            start_offset=chunks[0][0] - t_start if chunks and t_start is not None else None,
            end_offset=end_offset(recs),
            first_audio=spoken[-1].played[0][0] - t_end if spoken and t_end is not None else None,
            laal=laal, yaal=yaal, end_parts=end_offset_parts(recs), seg_end_s=recs[-1].seg_end_s,
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


def end_part_figures(sources: list[SourceLatency]) -> dict[str, dict[str, float]]:
    """Median and mean of each of EndOffset's parts over the source utterances that have them (the
    means add up to the mean EndOffset; medians need not add up to anything)."""
    split = [s.end_parts for s in sources if s.end_parts is not None]
    return {name: {"n": len(split), "p50": percentile([p[name] for p in split], 50),
                   "mean": statistics.fmean(p[name] for p in split) if split else math.nan} for name in END_PARTS}
