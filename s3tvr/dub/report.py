"""The sync report: how well the dub keeps the original's timing, per phrase and overall, and how
much of the original's speech it dubbed.

Boundaries and speech activity are measured, not assumed: Silero VAD runs on the dubbed speech
track and on the original, with no pre-roll or tail, and the two are compared at 10 ms frames.
The original's speech that lies in no phrase that was spoken (never heard by the ASR, deleted
from the segments file, a phrase the TTS could not say) was not dubbed: the share that was is
reported, overall and per speaker, and is a target, so a dub that lost sentences never reads
"targets met".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import soxr

from s3tvr.audio import SAMPLE_RATE
from s3tvr.config import VadConfig
from s3tvr.dub.fit import Placement
from s3tvr.dub.phrases import Phrase
from s3tvr.latency.percentile import percentile
from s3tvr.live.segmenter import speech_regions

FRAME_S = 0.01
# What "in sync" means here; the report says whether each was met. A dub shorter than its
# original is allowed (translations often are, and drawling is worse), so the fit rate and the
# speech overlap are reported but not held to a target.
TARGETS = {"start_offset_median_s": 0.25, "collisions": 0, "length_difference_samples": 0}
# At least this share of the original's speech (by VAD) is dubbed: a sentence or two lost in a
# minute of speech misses it, the edges of phrases (below) do not.
MIN_SPEECH_DUBBED = 0.9
# Speech this close to a dubbed phrase counts as its own: word times are good to about this, and
# the VAD joins across pauses shorter than its endpoint (300 ms), so the gaps between one
# speaker's sentences read as speech.
COVER_S = 0.3
NO_PHRASE = "(in no phrase)"  # speech no phrase holds, when no diarization says whose it is


@dataclass
class Rendered:
    """One phrase after synthesis: its natural length, how it was sped up, and where it went."""

    phrase: Phrase
    tts_rate: float  # the speaking rate asked of the TTS (1: natural)
    duration: float  # seconds as first spoken
    placement: Placement | None  # None: dropped (nothing to say, or the TTS failed)
    error: str = ""
    audio: np.ndarray | None = field(default=None, repr=False)  # at the output rate, before stretching
    stretch: float = 1.0  # Rubber Band's speed-up of the TTS audio; tts_rate * stretch = the plan's tempo
    cut: float = 0.0  # seconds of the end that did not fit


def measure_vad() -> VadConfig:
    return VadConfig(preroll_ms=0, tail_ms=0, endpoint_ms=300, min_speech_ms=100)


def _frames(a: float, b: float) -> slice:
    return slice(max(0, int(a / FRAME_S)), max(0, int(np.ceil(b / FRAME_S))))


def _mask(regions: list[tuple[float, float]], total: float) -> np.ndarray:
    mask = np.zeros(int(np.ceil(total / FRAME_S)) + 1, dtype=bool)
    for a, b in regions:
        mask[_frames(a, b)] = True
    return mask


def coverage(rendered: Sequence[Rendered], src_mask: np.ndarray,
             speaker_at: Optional[Callable[[float], str]] = None) -> dict[str, Any]:
    """How much of the original's speech (``src_mask``: VAD frames) the dub's spoken phrases hold,
    overall and per speaker. Speech in a phrase is its speaker's; speech in none is the speaker
    ``speaker_at`` (diarization) names, else :data:`NO_PHRASE`'s."""
    dubbed = np.zeros_like(src_mask)
    for r in rendered:
        if r.placement is not None:
            dubbed[_frames(r.phrase.start - COVER_S, r.phrase.end + COVER_S)] = True
    owner = np.full(len(src_mask), "", dtype=object)
    for r in rendered:
        owner[_frames(r.phrase.start, r.phrase.end)] = r.phrase.speaker or "-"
    for a, b in _runs(src_mask & (owner == "")):  # speech in no phrase: whose, where diarization says
        owner[a:b] = speaker_at((a + b) / 2 * FRAME_S) if speaker_at else NO_PHRASE
    speakers = {}
    for name in dict.fromkeys(owner[src_mask]):
        mine = src_mask & (owner == name)
        speakers[name] = _share(mine, dubbed)
    return {**_share(src_mask, dubbed), "speakers": speakers}


def _share(speech: np.ndarray, dubbed: np.ndarray) -> dict[str, Any]:
    total, done = speech.sum() * FRAME_S, (speech & dubbed).sum() * FRAME_S
    return {"speech_s": round(float(total), 2), "dubbed_s": round(float(done), 2),
            "dubbed_share": round(float(done / total), 3) if total else None}


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, past the last) frame of each run of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def build(rendered: Sequence[Rendered], source16k: np.ndarray, dub_speech: np.ndarray, rate: int,
          input_samples: int, output_samples: int, max_tempo: float,
          speaker_at: Optional[Callable[[float], str]] = None) -> dict[str, Any]:
    """The report; ``speaker_at``: who speaks at a time (diarization), for speech no phrase holds."""
    total = input_samples / rate
    dub16k = soxr.resample(dub_speech, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else dub_speech
    vad = measure_vad()
    src_regions = speech_regions(source16k, vad)
    dub_regions = speech_regions(dub16k.astype(np.float32), vad)
    src_mask, dub_mask = _mask(src_regions, total), _mask(dub_regions, total)
    union = int((src_mask | dub_mask).sum())
    iou = float((src_mask & dub_mask).sum() / union) if union else 1.0

    rows, starts, ends = [], [], []
    placed = [r for r in rendered if r.placement is not None]
    # Each phrase owns the output from the end of the phrase before to the start of the next, so
    # speech that VAD joins across a short gap still counts for the phrase it belongs to.
    bounds = {id(r): (placed[i - 1].placement.end if i else 0.0, placed[i + 1].placement.start if i + 1 < len(placed) else total)
              for i, r in enumerate(placed)}
    for r in rendered:
        p, pl = r.phrase, r.placement
        row = {"id": p.id, "start": round(p.start, 3), "end": round(p.end, 3), "source": p.source,
               "translation": p.translation, "tts_rate": round(r.tts_rate, 3),
               "ratio_before": round(r.duration / p.duration, 3) if p.duration else None, "error": r.error or None}
        if pl is not None:
            row.update({"dub_start": round(pl.start, 3), "dub_end": round(pl.end, 3),
                        "ratio_after": round((pl.end - pl.start) / p.duration, 3), "stretch": round(r.stretch, 3),
                        "tempo": round(r.stretch * r.tts_rate, 3), "borrowed_s": round(pl.borrowed, 3),
                        "cut_s": round(r.cut, 3), "fit": pl.note if r.cut <= 0.01 or pl.cut else "retake overran: cut"})
            lo, hi = bounds[id(r)]
            heard = [(max(a, lo), min(b, hi)) for a, b in dub_regions if a < min(pl.end, hi) and b > max(pl.start, lo)]
            if heard:
                row["start_offset_s"] = round(heard[0][0] - p.start, 3)
                row["end_offset_s"] = round(heard[-1][1] - p.end, 3)
                starts.append(abs(row["start_offset_s"]))
                ends.append(abs(row["end_offset_s"]))
        rows.append(row)

    def share(key: str, limit: float) -> float:
        values = [row[key] for row in rows if row.get(key) is not None]
        return round(sum(abs(v - 1) <= limit for v in values) / len(values), 3) if values else 1.0

    tempos = [row["tempo"] for row in rows if "tempo" in row]
    collisions = sum(1 for a, b in zip(placed, placed[1:]) if a.placement.end > b.placement.start + 1e-6)
    overall = {
        "phrases": len(rows),
        "fit_within_10pct_before": share("ratio_before", 0.1), "fit_within_20pct_before": share("ratio_before", 0.2),
        "fit_within_10pct": share("ratio_after", 0.1), "fit_within_20pct": share("ratio_after", 0.2),
        "start_offset_median_s": round(float(np.median(starts)), 3) if starts else None,
        "start_offset_p95_s": round(percentile(starts, 95), 3) if starts else None,
        "end_offset_median_s": round(float(np.median(ends)), 3) if ends else None,
        "end_offset_p95_s": round(percentile(ends, 95), 3) if ends else None,
        "speech_iou": round(iou, 3),
        "stretch_max": max((row["stretch"] for row in rows if "stretch" in row), default=1.0),
        "tempo_max": max(tempos, default=1.0), "tempo_p95": round(percentile(tempos, 95), 3) if tempos else 1.0,
        "tempo_share_above_1_2": round(sum(t > 1.2 for t in tempos) / len(tempos), 3) if tempos else 0.0,
        "collisions": collisions,
        "truncations": sum(1 for row in rows if (row.get("cut_s") or 0) > 0.01),
        "dropped": sum(1 for r in rendered if r.placement is None),
        "length_difference_samples": output_samples - input_samples,
    }
    speech = coverage(rendered, src_mask, speaker_at)
    overall.update({"source_speech_s": speech["speech_s"], "speech_dubbed_s": speech["dubbed_s"],
                    "speech_dubbed_share": speech["dubbed_share"]})
    met = {}
    for key, target in TARGETS.items():
        value = overall[key]
        if value is not None:
            met[key] = bool(value <= target) if key.endswith("_s") else bool(value == target)
    met["stretch_max"] = bool(overall["stretch_max"] <= max_tempo + 1e-6)
    if speech["dubbed_share"] is not None:  # at least: the one target that is a floor
        met["speech_dubbed_share"] = bool(speech["dubbed_share"] >= MIN_SPEECH_DUBBED)
    return {"overall": overall, "targets": {**TARGETS, "stretch_max": max_tempo, "speech_dubbed_share": MIN_SPEECH_DUBBED},
            "met": met, "speech_by_speaker": speech["speakers"], "phrases": rows}


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{'id':>3} {'start':>7} {'src s':>6} {'dub s':>6} {'before':>6} {'after':>6} {'tempo':>5} {'start±':>6}  fit"]
    for row in report["phrases"]:
        src = row["end"] - row["start"]
        dub = row.get("dub_end", 0) - row.get("dub_start", 0) if "dub_start" in row else 0.0
        lines.append(f"{row['id']:>3} {row['start']:>7.2f} {src:>6.2f} {dub:>6.2f} {row['ratio_before'] or 0:>6.2f} "
                     f"{row.get('ratio_after', 0):>6.2f} {row.get('tempo', 0):>5.2f} {row.get('start_offset_s', float('nan')):>6.2f}  "
                     f"{row.get('fit') or 'dropped: ' + (row['error'] or 'no speech')}")
    o = report["overall"]
    lines.append(
        f"fit ±10 %: {o['fit_within_10pct_before']:.0%} before, {o['fit_within_10pct']:.0%} after; "
        f"±20 %: {o['fit_within_20pct_before']:.0%} before, {o['fit_within_20pct']:.0%} after")
    lines.append(
        f"start offset median {o['start_offset_median_s']} s, p95 {o['start_offset_p95_s']} s; end offset median "
        f"{o['end_offset_median_s']} s; speech IoU {o['speech_iou']:.2f}; tempo max {o['tempo_max']:.2f}, "
        f"above 1.2x {o['tempo_share_above_1_2']:.0%}")
    lines.append(f"collisions {o['collisions']}, truncations {o['truncations']}, dropped {o['dropped']}, "
                 f"length difference {o['length_difference_samples']} samples")
    if o.get("background"):  # set by the dubber once the mix is made
        cost = (f": separated in {o['separation_s']} s ({o['separation_s_per_min']} s per minute of audio"
                f"{', cached' if o['separation_cached'] else ''})" if "separation_s" in o else "")
        lines.append(f"background {o['background']}{cost}")
    if report.get("speakers"):
        lines.append(_speakers_line(report["speakers"]))
    if o.get("speech_dubbed_share") is not None:
        lines.append(_speech_line(o, report.get("speech_by_speaker", {})))
    missed = [k for k, ok in report["met"].items() if not ok]
    lines.append("targets met" if not missed else "targets missed: " + ", ".join(missed))
    return "\n".join(lines)


def _speech_line(o: dict[str, Any], by_speaker: dict[str, Any]) -> str:
    """How much of the original's speech was dubbed, and whose was not."""
    each = "; ".join(f"{name}: {s['dubbed_share']:.0%} of {s['speech_s']} s" for name, s in by_speaker.items()
                     if s["dubbed_share"] is not None)
    floor = "" if o["speech_dubbed_share"] >= MIN_SPEECH_DUBBED else f", under the {MIN_SPEECH_DUBBED:.0%} target"
    return (f"speech dubbed {o['speech_dubbed_share']:.0%} of the original's {o['source_speech_s']} s{floor}"
            + (f" ({each})" if each else ""))


def _speakers_line(speakers: dict[str, Any]) -> str:
    """How many speakers were found (and asked) and how each was voiced."""
    asked = f" ({speakers['asked']} asked)" if speakers.get("asked") else ""
    cost = f", diarization {speakers['diarization_s']} s" if speakers.get("diarization_s") else ""
    voices = "; ".join(f"{name}: {v['voice']}, {v['phrases']} phrases, {v['seconds']} s"
                       for name, v in speakers.get("voices", {}).items())
    overlap = (f", {speakers['overlap_s']} s with two voices at once ({speakers['phrases_overlapped']} phrases marked)"
               if speakers.get("overlap_s") else "")
    unsure = f", unsure: or {speakers['unsure']['or']} ({speakers['unsure']['flag']})" if speakers.get("unsure") else ""
    return f"speakers {speakers['found']}{asked}{cost}{overlap}{unsure}: {voices}"
