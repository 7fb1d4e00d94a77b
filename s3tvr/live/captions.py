"""Live captions: what a run said, as it says it, in files another program can follow
(``--captions out.vtt|out.srt``), and the lines a caption overlay shows (:mod:`s3tvr.serve.captions`).

A caption is made from an utterance's logged record, so it is committed text only: what was
spoken (or heard and translated with nothing to say aloud), never taken back. A tentative tail
dropped when the speaker went on (messages.DROPPED_TAIL) and a failed utterance show nothing. In
simultaneous mode each committed clause is a cue of its own, as it is spoken: a clause (3 to 12
words, simultaneous.clause_*_words) reads as a line, and a cue per source utterance would hold
every clause back until its sentence ended, the lag the mode exists to avoid.

The translation goes into the file given, the source beside it as NAME.src.EXT (``out.vtt`` and
``out.src.vtt``). Cue times are on the input's timeline: a file's own, a microphone's since the
run started. Each cue is appended in one write and fsync'd as its utterance is logged, so the
file is valid WebVTT/SubRip at every cue boundary, whatever stops the run: a cue is in the file
whole or not at all (a write cut short by a full disk is taken back, and that file stops there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from s3tvr import files
from s3tvr.errors import DiskFull, InputError, brief
from s3tvr.latency.record import UtteranceRecord
from s3tvr.live.messages import DROPPED_TAIL
from s3tvr.text import cues

log = logging.getLogger(__name__)

MIN_CUE_S = 1.0  # a cue shorter than this (a one-word utterance) is shown this long: long enough to read


@dataclass(frozen=True)
class Caption:
    """One utterance's committed lines, as captions show them."""

    utt_id: int
    source_id: int
    start_s: float  # on the input's timeline
    end_s: float
    src_lang: str
    tgt_lang: str
    src_text: str  # "" where the run has none (Whisper's translate task without asr.transcript)
    tgt_text: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def caption_of(rec: UtteranceRecord) -> Optional[Caption]:
    """The caption of a logged utterance, None if it shows nothing: failed, a dropped tentative
    tail, or no words. The page's captions follow the same rule (transport.WebSocketSink.end)."""
    if rec.error or rec.skipped == DROPPED_TAIL or not (rec.src_text.strip() or rec.tgt_text.strip()):
        return None
    source_id = rec.source_id if isinstance(rec.source_id, int) else rec.utt_id
    return Caption(rec.utt_id, source_id, rec.seg_start_s, rec.seg_end_s, rec.src_lang, rec.tgt_lang,
                   cues.one_line(rec.src_text), cues.one_line(rec.tgt_text))


def caption_paths(path: str | Path) -> tuple[Path, Path]:
    """The translation's file (``path``) and the source's beside it: out.vtt -> out.src.vtt."""
    path = Path(path)
    return path, path.with_name(f"{path.stem}.src{path.suffix}")


def caption_format(path: str | Path, flag: str = "--captions") -> str:
    """srt or vtt, by the name's ending; anything else a one-line InputError."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in cues.FORMATS:
        raise InputError(f"{flag} {path}: give a .vtt (WebVTT) or .srt (SubRip) file name; the format is told by its ending")
    return fmt


class CueFile:
    """One caption track, appended cue by cue: created (replacing any file of its name) with its
    first cue, each cue one write and an fsync."""

    def __init__(self, path: Path, fmt: str):
        self.path, self.fmt = path, fmt
        self.count = 0
        self.last_start = 0.0
        self.failed = ""  # why the file stopped (a full disk), once it did
        self._fd: Optional[int] = None

    def add(self, start: float, end: float, text: str) -> None:
        if self.failed or not text.strip():
            return
        start = max(start, self.last_start)  # cues in order, whatever an utterance's own times say
        end = max(end, start + MIN_CUE_S)
        block = cues.cue_block(self.count + 1, start, end, text, self.fmt)
        head = (cues.VTT_HEADER if self.fmt == "vtt" else "") if self.count == 0 else "\n"
        if self._write((head + block + "\n").encode()):
            self.count += 1
            self.last_start = start

    def _write(self, data: bytes) -> bool:
        """``data`` appended whole and on disk, or taken back (the file stops there, said once)."""
        at = None
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            at = os.lseek(self._fd, 0, os.SEEK_END)
            written = os.write(self._fd, data)
            if written < len(data):  # a short write is a full disk that said nothing yet
                raise OSError(28, os.strerror(28))
            os.fsync(self._fd)  # so a program following the file, and a crash, see the cue whole
            return True
        except OSError as exc:
            cause = files.no_room(exc, self.path.parent) or brief(exc)
            self.failed = f"cannot write the captions {self.path}: {cause} (it holds the {self.count} cues before)"
            log.error("%s; the translation goes on", self.failed)
            if self._fd is not None and at is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, at)
            return False

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class CaptionFiles:
    """``--captions PATH``: the translation track at PATH, the source track beside it
    (:func:`caption_paths`), one cue per logged utterance (:func:`caption_of`)."""

    def __init__(self, path: str | Path, flag: str = "--captions"):
        self.flag = flag
        fmt = caption_format(path, flag)
        translation, source = caption_paths(path)
        self.translation, self.source = CueFile(translation, fmt), CueFile(source, fmt)

    def check(self, input: Optional[str | Path] = None) -> None:
        """Before any model loads: both files writable, neither the input."""
        for track in (self.translation, self.source):
            files.check_output(track.path, self.flag)
            if input:
                files.check_not_same(input, track.path, self.flag)

    def add(self, rec: UtteranceRecord) -> None:
        caption = caption_of(rec)
        if caption is None:
            return
        self.translation.add(caption.start_s, caption.end_s, caption.tgt_text)
        self.source.add(caption.start_s, caption.end_s, caption.src_text)

    def close(self) -> None:
        """Close both; one that stopped early is raised: captions that miss utterances must not pass as whole."""
        for track in (self.translation, self.source):
            track.close()
        failed = self.translation.failed or self.source.failed
        if failed:
            raise DiskFull(f"{failed}: free space there, or give {self.flag} on another disk")

    @property
    def paths(self) -> list[Path]:
        """The files written (a track with no cue is never created)."""
        return [t.path for t in (self.translation, self.source) if t.count]
