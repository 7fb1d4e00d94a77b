"""``s3tvr dub`` over a catalogue: many inputs, one or several target languages, one output folder.

    inputs (files, folders, globs, @list files) × languages → jobs (input, lang, output)
    → skip the done ones (output and sync report both there) → dub the rest, in this process or
    on a Ray cluster's workers → retry a failed job (bounded) → summary table and catalogue.json

Models load once per worker, not per file: a :class:`Worker` keeps one engine per target
language (and source language) for its whole life and hands them to each :class:`Dubber`. A job's
stage cache is its own ``OUTPUT.work/`` in the output folder, so a job stopped anywhere (Ctrl-C, a
dead Ray node) is finished from that cache by whichever worker runs it next. Outputs are written
under partial names and renamed, so an output that exists is whole.
"""

from __future__ import annotations

import glob
import logging
import os
import socket
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from s3tvr import files
from s3tvr.config import Config
from s3tvr.dub import media
from s3tvr.errors import InputError, S3tvrError, brief
from s3tvr.progress import Progress

log = logging.getLogger(__name__)

# What a folder's files are taken for: audio and video ffmpeg reads.
MEDIA = {".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".wma",
         ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}
VIDEO_ELSEWHERE = {".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}  # video s3tvr reads but does not write: dubbed into .mkv


@dataclass(frozen=True)
class Job:
    input: Path
    lang: str
    output: Path

    @property
    def report(self) -> Path:
        """The sync report: written last by a dub, so output and report together mean done."""
        stem = self.output.with_suffix("")
        return stem.with_name(stem.name + ".sync.json")

    def done(self) -> bool:
        return self.output.is_file() and self.report.is_file()


@dataclass
class JobResult:
    input: str
    lang: str
    output: str
    status: str  # done, skipped or failed
    reason: str = ""  # why it failed (one line)
    seconds: float = 0.0  # wall time of the last attempt
    audio_s: float = 0.0  # the input's duration
    rtf: Optional[float] = None  # real-time factor: seconds / audio_s
    attempts: int = 0
    worker: dict[str, Any] = field(default_factory=dict)  # host, pid, and Ray node id of who dubbed it


# -- the jobs ----------------------------------------------------------------------------------

def expand_inputs(items: Sequence[str]) -> list[Path]:
    """Files as given, a folder's media files (sorted, not recursive), a glob's matches, and the
    lines of ``@list.txt`` (one path a line, # comments), each once, in order."""
    found: list[Path] = []
    for item in items:
        if item.startswith("@"):
            found += _from_list(Path(item[1:]))
        elif Path(item).is_dir():
            found += sorted(p for p in Path(item).iterdir() if p.is_file() and p.suffix.lower() in MEDIA)
        elif glob.has_magic(item) and not Path(item).exists():
            matches = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
            if not matches:
                raise InputError(f"{item} matches no file")
            found += matches
        else:
            found.append(Path(item))
    if not found:
        raise InputError(f"no audio or video files in {', '.join(items)}")
    return list(dict.fromkeys(found))


def _from_list(path: Path) -> list[Path]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read the list @{path}: {exc.strerror}") from None
    base = path.parent
    return [p if p.is_absolute() else base / p
            for p in (Path(line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#"))]


def plan(inputs: Sequence[Path], langs: Sequence[str], folder: Path) -> list[Job]:
    """One job per input and language: FOLDER/STEM.LANG.EXT (video stays video)."""
    jobs = [Job(i, lang, folder / f"{i.stem}.{lang}{output_suffix(i)}") for i in inputs for lang in langs]
    seen: dict[Path, Path] = {}
    for job in jobs:
        if seen.setdefault(job.output, job.input) != job.input:
            raise InputError(f"{seen[job.output]} and {job.input} would both be dubbed into {job.output.name}: "
                             "rename one, or dub them into different folders")
    return jobs


# What a dub writes beside its output (DIR/STEM.LANG.EXT): never an input of the catalogue that wrote it.
SIDE_FILES = (".segments.json", ".sync.json", ".srt", ".vtt")


def without_own_outputs(inputs: Sequence[Path], langs: Sequence[str], folder: Path,
                        speakers_file: Optional[Path] = None) -> tuple[list[Path], list[Path]]:
    """The inputs less those this catalogue wrote into ``folder`` (a folder dubbed into itself, run
    again, would dub x.en.wav into x.en.en.wav): a dub this run makes or an earlier run made (its
    sync report beside it), a dub's side files and work folder, catalogue.json, the speakers file.
    Returns (inputs, skipped)."""
    here = folder.resolve()
    planned = {(here / f"{i.stem}.{lang}{output_suffix(i)}") for i in inputs for lang in langs}
    speakers = speakers_file.resolve() if speakers_file else None
    kept, skipped = [], []
    for path in inputs:
        (skipped if _own(path.resolve(), here, planned, speakers) else kept).append(path)
    return kept, skipped


def _own(path: Path, here: Path, planned: set[Path], speakers: Optional[Path]) -> bool:
    if path == speakers:
        return True
    if not path.is_relative_to(here):
        return False
    inside = path.relative_to(here).parts
    if len(inside) > 1:  # in a folder of the catalogue's: a dub's work folder
        return inside[0].endswith(".work")
    report = path.with_suffix("").with_name(path.with_suffix("").name + ".sync.json")
    return (path in planned or report.is_file() or path.name == "catalogue.json"
            or path.name.lower().endswith(SIDE_FILES))


def output_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in media.VIDEO_OUTPUTS or suffix in media.AUDIO_OUTPUTS:
        return suffix
    return ".mkv" if suffix in VIDEO_ELSEWHERE else ".wav"


def clear_partials(job: Job) -> None:
    """Remove what an attempt that died while writing left under partial names (never read back)."""
    stale = list(job.output.parent.glob(f".{job.output.with_suffix('').name}*.partial*"))
    work = job.output.with_suffix("").with_name(job.output.with_suffix("").name + ".work")
    if work.is_dir():
        stale += [p for p in work.rglob(".*.partial*") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)


# -- one worker ----------------------------------------------------------------------------------

class Worker:
    """Dubs jobs one after another over engines it keeps: one per target language (and detected
    source language), models loaded on first use and never again for its life."""

    def __init__(self, configs: dict[str, Config], options: Any, voice: Sequence[str] = ()):
        self.configs, self.options, self.voice = configs, options, tuple(voice)
        self.engines: dict[tuple[Any, ...], Any] = {}
        self.identity = {"host": socket.gethostname(), "pid": os.getpid(), "node": _ray_node_id()}

    def dub(self, job: Job) -> JobResult:
        from s3tvr.dub.dubber import Dubber

        clear_partials(job)
        started = time.perf_counter()
        result = JobResult(str(job.input), job.lang, str(job.output), "done")
        try:
            result.audio_s = duration(job.input)
            Dubber(self.configs[job.lang], job.input, job.output, self.options, Progress(), voice=self.voice,
                   engines=self.engines).run()
        except Exception as exc:  # one file's failure is reported with its reason; the catalogue goes on
            result.status, result.reason = "failed", _reason(exc)
            result.worker["error"] = exc.__class__.__name__
            log.debug("%s failed", job.input, exc_info=True)
        result.worker = {**self.identity, **result.worker, "loads": self.loads()}  # the loads so far: a record that outlives the worker
        result.seconds = round(time.perf_counter() - started, 3)
        result.rtf = round(result.seconds / result.audio_s, 3) if result.audio_s else None
        return result

    def loads(self) -> dict[str, int]:
        """How many times each model was loaded by this worker (an engine loads each of its models once)."""
        from s3tvr.live.engine import Engine

        names = [name for engine in self.engines.values() if isinstance(engine, Engine) for name in engine.loads]
        names += [key[0] for key, part in self.engines.items() if not isinstance(part, Engine)]  # the separator, the speaker encoder
        return dict(Counter(names))

    def info(self) -> dict[str, Any]:
        """Who this worker is, what it loaded, and its resident memory now (the size of a worker, for docs/ray.md)."""
        import psutil

        return {**self.identity, "loads": self.loads(), "rss_mb": round(psutil.Process().memory_info().rss / 2**20)}

    def close(self) -> None:
        from s3tvr.live.engine import Engine

        for engine in self.engines.values():
            if isinstance(engine, Engine):
                engine.cleanup()
        self.engines.clear()


def duration(path: Path) -> float:
    """The input's duration in seconds from its container, without decoding it (0 when unknown)."""
    import av

    try:
        with av.open(str(path)) as c:
            return float(c.duration) / 1e6 if c.duration else 0.0
    except (OSError, av.error.FFmpegError):
        return 0.0


def _reason(exc: BaseException) -> str:
    if isinstance(exc, S3tvrError):
        return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return brief(exc)


def _ray_node_id() -> Optional[str]:
    import sys

    if "ray" not in sys.modules:
        return None
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


# -- the catalogue -----------------------------------------------------------------------------

@dataclass
class Catalogue:
    jobs: list[Job]
    retries: int = 1  # a failed job is tried again this many times (a bad input is not: it fails the same way)
    results: list[JobResult] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)  # each worker's identity and model loads
    seconds: float = 0.0
    mode: str = "local"

    def todo(self) -> list[Job]:
        return [j for j in self.jobs if not j.done()]

    def skipped(self) -> list[JobResult]:
        return [JobResult(str(j.input), j.lang, str(j.output), "skipped", "already dubbed") for j in self.jobs if j.done()]

    def retry(self, job: Job, result: JobResult) -> bool:
        """Whether a failed attempt is worth another: not for a bad input, not past --retries."""
        bad_input = result.worker.get("error") == "InputError"
        return result.status == "failed" and not bad_input and result.attempts <= self.retries

    def finish(self, results: Iterable[JobResult], seconds: float) -> None:
        order = {(str(j.input), j.lang): i for i, j in enumerate(self.jobs)}
        self.results = sorted(results, key=lambda r: order[(r.input, r.lang)])
        self.seconds = round(seconds, 3)
        for job in self.jobs:
            if not job.done():
                clear_partials(job)

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if r.status == "failed"]

    def to_json(self) -> dict[str, Any]:
        counts = Counter(r.status for r in self.results)
        return {"mode": self.mode, "seconds": self.seconds, "retries": self.retries, "counts": dict(counts),
                "workers": self.workers, "jobs": [asdict(r) for r in self.results]}

    def write(self, path: Path) -> None:
        files.write_json(path, self.to_json())


def run_local(catalogue: Catalogue, worker: Worker, progress: Progress) -> None:
    """Every job not done yet, one after another in this process, over one worker's engines."""
    started = time.perf_counter()
    todo = catalogue.todo()
    tick = progress.stage("catalogue", len(todo))
    results = catalogue.skipped()
    try:
        for job in todo:
            attempts = 0
            while True:
                attempts += 1
                result = worker.dub(job)
                result.attempts = attempts
                if not catalogue.retry(job, result):
                    break
                log.warning("%s -> %s failed (%s): trying again", job.input, job.lang, result.reason)
            _said(result)
            results.append(result)
            tick()
    finally:
        catalogue.workers = [worker.info()]
        worker.close()
    catalogue.finish(results, time.perf_counter() - started)


def _said(result: JobResult) -> None:
    if result.status == "failed":
        log.warning("%s -> %s failed: %s", result.input, result.lang, result.reason)
    else:
        log.info("%s -> %s done in %.1f s", result.input, result.output, result.seconds)


def format_table(catalogue: Catalogue) -> str:
    """The summary: one row per job, then the totals."""
    rows = [("file", "lang", "status", "seconds", "rtf", "reason")]
    for r in catalogue.results:
        rows.append((Path(r.input).name, r.lang, r.status, f"{r.seconds:.1f}" if r.status != "skipped" else "-",
                     f"{r.rtf:.2f}" if r.rtf is not None and r.status == "done" else "-", r.reason))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths)) + ("  " + row[5] if row[5] else "") for row in rows]
    counts = Counter(r.status for r in catalogue.results)
    lines.append(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed in {catalogue.seconds:.1f} s "
                 f"({catalogue.mode})")
    return "\n".join(line.rstrip() for line in lines)
