"""Who speaks when, as ``s3tvr dub`` finds it, on three sets, each scored with a 0.25 s collar:

    (a) conversations of 2, 3 and 4 readers of different languages (FLEURS and LJSpeech clips of
        the shared data cut at their pauses and interleaved, a third of the changes with no pause;
        s3tvr.eval.conversations), the readers today's threshold (0.41) was chosen on;
    (b) conversations of 2, 3 and 4 speakers of one language, English and Spanish, built the same
        way from speakers no parameter of the eigengap count was chosen on;
    (c) the AMI meeting excerpts of speech/ami (real meetings, overlapping speech), scored with and
        without the overlapped frames; a count is right there within one of the speakers who say
        at least 3 s. trn00-09 chose the eigengap's parameters (SPEECH_PER_SPEAKER_S, UNSURE,
        OVERLAP_MARGIN in s3tvr/dub/diarize.py); dev00, dev01 and sample are held out.

Both ways of counting speakers side by side on the same embeddings: "threshold" (agglomerative
clustering cut at cosine distance 0.41, the dub's way before) and "eigengap" (NME-SC, the dub's
way now). Then the cost per minute, the overlap marks against AMI's, the counts said to be unsure,
recordings of one speaker (which must stay one), the speakers file's match, this machine's
full-window Whisper base pass over 10 s (to scale the times), and one whole dub of a two-reader
conversation for diarization's share of its time.

    python benchmarks/bench_diarization.py [--no-dub] [--data DIR]

Held out of every choice: the English speakers of (b) (fleurs-en-000, fleurs-en-001, silero_en,
the RealtimeSTT narration, JFK) and two of the Spanish ones (fleurs-es-001, silero_es); the other
two Spanish (fleurs-es-000/002, -003/004) are (a)'s readers D and E, so they chose 0.41 but
nothing of the eigengap count.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import soundfile as sf
from shared_data import add_argument, speech, use

from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import load_audio
from s3tvr.backends.voice_similarity import SpeakerEncoder
from s3tvr.config import load_config
from s3tvr.dub import diarize as dz
from s3tvr.eval.conversations import _frames, build, der
from s3tvr.live.segmenter import load_vad, speech_regions

READERS = {  # one reader each, as Resemblyzer tells them apart; under speech/
    "C": [f"fleurs/fleurs-en-00{i}.ogg" for i in (2, 3, 4)],
    "L": [f"ljspeech/LJ001-{i:04d}.flac" for i in range(1, 9)],
    "D": ["fleurs/fleurs-es-000.ogg", "fleurs/fleurs-es-002.ogg"],
    "E": ["fleurs/fleurs-es-003.ogg", "fleurs/fleurs-es-004.ogg"],
}
GROUPS = {2: "CL", 3: "CDL", 4: "CDEL"}
SEEDS = (10, 11, 12)
SAME_LANGUAGE = {  # (b): one speaker each (utterance cosines 0.49-0.82 across them; 0.82-0.92 within)
    "en": {"en0": ["fleurs/fleurs-en-000.ogg"], "en1": ["fleurs/fleurs-en-001.ogg"], "silero": ["long/silero_en.wav"],
           "narrator": ["long/realtimestt_asr-reference.wav"], "jfk": ["jfk.flac"]},
    "es": {"D": READERS["D"], "E": READERS["E"], "es1": ["fleurs/fleurs-es-001.ogg"], "silero": ["long/silero_es.wav"]},
}
SAME_SEEDS = (20, 21, 22)  # each seed draws the speakers of its 2, 3 and 4 from each language
AMI_TUNING = "trn"  # excerpts whose names start so chose the parameters
THRESHOLD = 0.41  # the dub's distance threshold before the eigengap


@dataclass
class Recording:
    part: str  # a, b-en, b-es, ami-tuning, ami-held-out
    name: str
    audio: np.ndarray
    turns: list[tuple[float, float, int]]
    speakers: int  # the count that is right (AMI: those who say at least 3 s)
    windows: Optional[tuple] = None  # (embeddings, spans, full) of the VAD's regions
    regions: Optional[list[tuple[float, float]]] = None
    embed_s: float = 0.0


def paths(clips: list[str]) -> list[Path]:
    return [speech(clip) for clip in clips]


def conversations() -> list[Recording]:
    out = []
    for n, group in GROUPS.items():
        for seed in SEEDS:
            conv = build([paths(READERS[r]) for r in group], seed=seed)
            out.append(Recording("a", f"{group}/{seed}", conv.audio, conv.turns, n))
    for seed in SAME_SEEDS:
        rng = np.random.default_rng(seed)
        for lang, people in SAME_LANGUAGE.items():
            for n in (2, 3, 4):
                chosen = [str(p) for p in rng.choice(sorted(people), n, replace=False)]
                conv = build([paths(people[p]) for p in chosen], seed=seed)
                out.append(Recording(f"b-{lang}", f"{'+'.join(chosen)}/{seed}", conv.audio, conv.turns, n))
    return out


def ami() -> list[Recording]:
    turns: dict[str, list[tuple[float, float, str]]] = {}
    for line in speech("ami", "reference.rttm").read_text().splitlines():
        f = line.split()
        turns.setdefault(f[1], []).append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    out = []
    for name, mine in sorted(turns.items()):
        people = sorted({s for *_, s in mine})
        said = {p: sum(b - a for a, b, s in mine if s == p) for p in people}
        part = "ami-tuning" if name.startswith(AMI_TUNING) else "ami-held-out"
        out.append(Recording(part, name, load_audio(speech("ami", f"{name}.flac")),
                             [(a, b, people.index(s)) for a, b, s in mine], sum(s >= 3.0 for s in said.values())))
    return out


def threshold(windows: np.ndarray, spans: list, full: np.ndarray, regions: list) -> dz.Diarization:
    """The dub's way before: agglomerative clustering cut at THRESHOLD, small clusters folded."""
    from sklearn.cluster import AgglomerativeClustering

    x = windows[full]
    if len(x) < 3:
        return dz.from_windows(windows, spans, full, regions)
    labels = AgglomerativeClustering(n_clusters=None, distance_threshold=THRESHOLD, metric="cosine",
                                     linkage="average").fit_predict(x)
    return dz._assign(windows, spans, regions, dz._fold_small(dz._centroids(x, labels), x))


METHODS: dict[str, Callable[..., dz.Diarization]] = {"threshold": threshold, "eigengap": dz.from_windows}


def score(rec: Recording, found: dz.Diarization) -> dict:
    hyp = [(t.start, t.end, t.speaker) for t in found.turns]
    with_overlap, without = der(rec.turns, hyp), der(rec.turns, hyp, score_overlap=False)
    right = abs(found.speakers - rec.speakers) <= 1 if rec.part.startswith("ami") else found.speakers == rec.speakers
    return {"part": rec.part, "name": rec.name, "speakers": rec.speakers, "found": found.speakers, "right": bool(right),
            "minutes": len(rec.audio) / SAMPLE_RATE / 60, "der_overlap_scored": with_overlap["der"], **without,
            "alternative": found.alternative.speakers if found.alternative else None}


def pooled(rows: list[dict], key: str) -> float:
    """Errors over all speech: a 30 s excerpt with 1 s of speech weighs what its speech weighs."""
    return sum(r[key] * r["speech_s"] for r in rows) / max(sum(r["speech_s"] for r in rows), 1e-9)


def table(rows: list[dict]) -> None:
    print(f"{'method':>10}{'part':>14}{'spk':>4}{'recs':>5}{'minutes':>8}{'count right':>12}{'DER %':>7}{'missed':>7}"
          f"{'f.alarm':>8}{'confus.':>8}{'DER ovl':>8}")
    for method in METHODS:
        for part in ("a", "b-en", "b-es", "ami-tuning", "ami-held-out"):
            mine = [r for r in rows if r["method"] == method and r["part"] == part]
            for n in sorted({r["speakers"] for r in mine}) if not part.startswith("ami") else ["all"]:
                some = [r for r in mine if n == "all" or r["speakers"] == n]
                ovl = f"{pooled(some, 'der_overlap_scored'):>8.1f}" if part.startswith("ami") else f"{'':>8}"
                print(f"{method:>10}{part:>14}{n:>4}{len(some):>5}{sum(r['minutes'] for r in some):>8.1f}"
                      f"{sum(r['right'] for r in some):>9}/{len(some):<2}{pooled(some, 'der'):>7.1f}{pooled(some, 'missed'):>7.1f}"
                      f"{pooled(some, 'false_alarm'):>8.1f}{pooled(some, 'confusion'):>8.1f}{ovl}")
    print("DER pooled over each row's speech, overlapped frames not scored; 'DER ovl': AMI with them scored. "
          "count right: exact (a, b); within one of those who say >= 3 s (AMI)")


def overlap_marks(recordings: list[Recording]) -> None:
    """The eigengap's overlap marks against AMI's overlapped frames (collar-free, 10 ms frames)."""
    for part in ("ami-tuning", "ami-held-out"):
        hit = marked = overlapped = 0
        for rec in (r for r in recordings if r.part == part):
            found = dz.from_windows(*rec.windows, rec.regions)
            n = int(len(rec.audio) / SAMPLE_RATE / 0.01) + 1
            truth = _frames(rec.turns, n).sum(axis=1) > 1
            mark = _frames([(t.start, t.end, 0) for t in found.overlaps], n)[:, 0] if found.overlaps else np.zeros(n, bool)
            hit, marked, overlapped = hit + int((truth & mark).sum()), marked + int(mark.sum()), overlapped + int(truth.sum())
        print(f"overlap marks, {part}: {overlapped * 0.01:.1f} s overlapped, {marked * 0.01:.1f} s marked, "
              f"{100 * hit / max(overlapped, 1):.0f} % of the overlap found, {100 * hit / max(marked, 1):.0f} % of the marks right")


ONE_VOICE = ["long/silero_en.wav", "long/silero_es.wav", "long/silero_de.wav", "long/silero_ru.wav",
             "long/realtimestt_asr-reference.wav", "jfk.flac", "fleurs/fleurs-es-001.ogg"]


def one_voice(encoder: SpeakerEncoder, cfg, vad) -> None:
    """Recordings of one speaker: the eigengap must not split them (a count with no threshold
    has no floor of its own at one)."""
    said = []
    for clip in ONE_VOICE:
        audio = load_audio(speech(clip))
        regions = speech_regions(audio, cfg.vad, vad)
        found = dz.from_windows(*dz._windows(audio, regions, encoder), regions)
        said.append(f"{Path(clip).stem} {found.speakers}" + (f" (or {found.alternative.speakers})" if found.alternative else ""))
    print(f"one speaker ({len(ONE_VOICE)} recordings, 11-60 s): found " + ", ".join(said))


def catalogue_prints(encoder: SpeakerEncoder) -> None:
    """The speakers file's match (voices.SAME_SPEAKER) on voice prints of whole clips: the same
    reader's other clips against other speakers of the same language."""
    from s3tvr.dub.voices import SAME_SPEAKER

    people = {("en", "C"): READERS["C"], ("en", "L"): READERS["L"][:4], **{
        (lang, name): clips for lang, some in SAME_LANGUAGE.items() for name, clips in some.items()}}
    prints = []
    for (lang, name), clips in people.items():
        for clip in paths(clips):
            windows, _ = encoder.windows(load_audio(clip), dz.STEP_S)
            prints.append((lang, name, dz._unit(windows.mean(axis=0))))
    pairs = [(a[1] == b[1], float(a[2] @ b[2])) for i, a in enumerate(prints) for b in prints[i + 1:] if a[0] == b[0]]
    same, other = [c for s, c in pairs if s], [c for s, c in pairs if not s]
    for th in sorted({0.7, SAME_SPEAKER}):
        print(f"speakers file at cosine >= {th}: the same reader's other clip missed {sum(c < th for c in same)}/{len(same)} "
              f"(lowest {min(same):.2f}); another speaker of the language taken for them {sum(c >= th for c in other)}/{len(other)} "
              f"(highest {max(other):.2f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-dub", action="store_true", help="skip the whole dub (diarization's share of a dub's time)")
    add_argument(ap)
    args = ap.parse_args()
    use(args.data)
    cfg = load_config("offline")
    vad = load_vad(cfg.vad.onnx)
    encoder = SpeakerEncoder()
    encoder.setup()
    recordings = conversations() + ami()
    rows, cluster_s = [], 0.0
    for rec in recordings:
        rec.regions = speech_regions(rec.audio, cfg.vad, vad)
        started = time.perf_counter()
        rec.windows = dz._windows(rec.audio, rec.regions, encoder)
        rec.embed_s = time.perf_counter() - started
        for method, run in METHODS.items():
            started = time.perf_counter()
            found = run(*rec.windows, rec.regions)
            cluster_s += (time.perf_counter() - started) * (method == "eigengap")
            rows.append({"method": method, **score(rec, found)})
    table(rows)
    minutes = sum(len(r.audio) for r in recordings) / SAMPLE_RATE / 60
    embed_s = sum(r.embed_s for r in recordings[1:])  # the first pays the encoder's warm-up
    print(f"\ncost per minute of audio (eigengap): {(embed_s + cluster_s) / minutes:.2f} s "
          f"(embeddings {embed_s / minutes:.2f} s, clustering {cluster_s / minutes:.2f} s; VAD not counted)")
    overlap_marks(recordings)
    unsure = [r for r in rows if r["method"] == "eigengap" and r["alternative"] is not None]
    print(f"counts said to be unsure: {len(unsure)} of {len(recordings)}: "
          + ", ".join(f"{r['name']} found {r['found']} (or {r['alternative']}; right {r['speakers']})" for r in unsure))
    one_voice(encoder, cfg, vad)
    catalogue_prints(encoder)
    out: dict = {"rows": rows, "reference_pass_s": reference_pass()}
    print(f"full-window Whisper base pass over 10 s on this machine: {out['reference_pass_s']:.2f} s")
    if not args.no_dub:
        out["dub"] = dub_share()
    Path("eval-out").mkdir(exist_ok=True)
    Path("eval-out/diarization.json").write_text(json.dumps(out, indent=1))


def reference_pass() -> float:
    from bench_window import reference_pass_s

    return reference_pass_s()


def dub_share() -> dict:
    """One dub of a two-reader conversation (en -> es offline, the original ducked): its wall time
    and the diarization's seconds from its sync report."""
    with tempfile.TemporaryDirectory() as tmp:
        conv = build([paths(READERS["C"]), paths(READERS["L"])[:4]], seed=10)
        src, out = Path(tmp) / "talk.wav", Path(tmp) / "talk.es.wav"
        sf.write(src, conv.audio, SAMPLE_RATE)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "s3tvr", "dub", str(src), "--from", "en", "--to", "es", "-o", str(out),
                        "--background", "duck"], check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        speakers = json.loads(out.with_name("talk.es.sync.json").read_text())["speakers"]
    share = speakers["diarization_s"] / wall * 100
    voices = ", ".join(f"{name} {v['voice']}" for name, v in speakers["voices"].items())
    print(f"\na dub of {len(conv.audio) / SAMPLE_RATE:.0f} s of two readers (en->es offline): {wall:.1f} s in all, "
          f"diarization {speakers['diarization_s']:.2f} s ({share:.1f} % of it); found {speakers['found']} speakers, "
          f"voices {voices}")
    return {"audio_s": len(conv.audio) / SAMPLE_RATE, "wall_s": wall, **speakers, "share_pct": share}


if __name__ == "__main__":
    main()
