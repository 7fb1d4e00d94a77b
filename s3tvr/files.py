"""Writing files whole or not at all: a temporary name beside the target, renamed at the end, so
an interrupted run never leaves a half-written file under the name a user expects."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from s3tvr.errors import InputError

NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems


def file_key(path: Path) -> str:
    """Identifies a file without reading it (a checkpoint has gigabytes): path, size, modification time."""
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()


def safe_name(name: str) -> str:
    """``name`` usable in a file name on any system: runs of other characters become "_"."""
    return re.sub(r"[^\w.-]+", "_", name)


def partial_path(path: Path, suffix: str = "") -> Path:
    """Where ``path`` is written before it is renamed into place: a hidden name in the same folder
    (a rename within a file system is atomic), short enough when ``path``'s own name is already
    at the length limit. ``suffix``: for writers that tell the format by the name's ending."""
    name = f".{path.name}.partial{suffix}"
    if len(os.fsencode(name)) > NAME_MAX:
        name = f".{hashlib.sha1(os.fsencode(path.name)).hexdigest()[:16]}.partial{suffix}"
    return path.with_name(name)


def check_output(path: str | Path, flag: str, folder: bool = False) -> None:
    """Refuse an output that could not be written, before any work is done and before anything is
    created: a missing folder, a folder where a file is meant (or the reverse), a name over the
    length limit, a place this user may not write. ``flag`` names the option in the message."""
    path = Path(path)
    if len(os.fsencode(path.name)) > NAME_MAX:  # first: the system refuses even to look such a name up
        raise InputError(f"{flag} name is {len(os.fsencode(path.name))} bytes long, over the {NAME_MAX} a file name may have: "
                         f"choose a shorter one")
    if not folder and path.is_dir():
        raise InputError(f"{flag} {path} is a folder: give a file name")
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{flag} {path} is a file: give a folder")
    where = path if folder else path.parent
    while folder and not where.exists() and where != where.parent:  # a folder output may create its parents
        where = where.parent
    if not where.is_dir():
        raise InputError(f"folder {where} does not exist: create it or choose another {flag}")
    try:  # the one reliable test: create a file there (unnamed, so nothing is left even if killed now)
        with tempfile.TemporaryFile(dir=where):
            pass
        if not folder and path.is_file() and not os.access(path, os.W_OK):
            raise PermissionError(13, os.strerror(13))
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}; choose another {flag}") from None


def check_not_same(input: str | Path, output: str | Path, flag: str) -> None:
    """Refuse an output that is the input (by another name too): writing it would destroy the input."""
    a, b = Path(input), Path(output)
    try:
        same = os.path.samefile(a, b)  # the same file by another name or a link too
    except OSError:  # one of them does not exist (yet)
        same = a.resolve() == b.resolve()
    if same:
        raise InputError(f"{flag} {output} is the input: it would be overwritten; choose another {flag}")


def read_jsonl(path: Path, what: str) -> list[tuple[int, Any]]:
    """(line number, value) of each line of a JSON Lines file, blank lines skipped; a binary file
    or a line that is not JSON is an InputError saying what the file should be (``what``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text file: give {what}") from None
    values = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                values.append((n, json.loads(line)))
            except json.JSONDecodeError:
                raise InputError(f"{path} line {n} is not JSON: give {what}") from None
    return values


def write_text(path: Path, text: str) -> None:
    tmp = partial_path(path)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=1, ensure_ascii=False, default=lambda x: None) + "\n")


def write_png(path: str | Path, figure: Any, dpi: int = 110) -> None:
    """A matplotlib figure as a PNG."""
    tmp = partial_path(Path(path))
    figure.savefig(tmp, format="png", dpi=dpi)
    tmp.replace(path)


def write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    tmp = partial_path(path)
    sf.write(tmp, audio, rate, format="WAV")
    tmp.replace(path)


class SoundFileWriter:
    """A sound file written as the audio comes, under a hidden partial name, and renamed into place
    by :meth:`finish` (on a stop too): the path never holds half a file, and nothing written is lost."""

    SUFFIXES = (".wav", ".flac", ".ogg")

    def __init__(self, path: str | Path, flag: str = "--output"):
        self.path = Path(path)
        self.flag = flag
        self.tmp = partial_path(self.path)
        self.samples = 0  # written so far
        self._file: Any = None

    def check(self) -> None:
        if self.path.suffix.lower() not in self.SUFFIXES:
            raise InputError(f"{self.flag} {self.path}: write .wav, .flac or .ogg")
        check_output(self.path, self.flag)

    @property
    def is_open(self) -> bool:
        return self._file is not None

    def open(self, rate: int) -> None:
        try:
            self._file = sf.SoundFile(self.tmp, "w", samplerate=rate, channels=1, format=self.path.suffix[1:].upper())
        except (OSError, sf.LibsndfileError, TypeError) as exc:
            raise InputError(f"cannot write {self.path}: {exc}") from None

    def write(self, samples: np.ndarray) -> None:
        self._file.write(samples)
        self.samples += len(samples)

    def finish(self) -> bool:
        """Close and rename into place; False if nothing was ever opened."""
        if self._file is None:
            return False
        self._file.close()
        self._file = None
        try:
            os.replace(self.tmp, self.path)
        except OSError as exc:  # never reported as written: say where the finished audio is
            raise InputError(f"cannot write {self.path}: {exc.strerror}; the translation is in {self.tmp}") from None
        return True

    def discard(self) -> None:
        """Leave no file behind (nothing worth keeping was written)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp.unlink(missing_ok=True)
