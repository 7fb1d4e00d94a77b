"""Writing files whole or not at all: a temporary name beside the target, renamed at the end, so
an interrupted run never leaves a half-written file under the name a user expects."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import soundfile as sf

from s3tvr.errors import DiskFull, InputError, S3tvrError, brief

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


# errno -> the cause as the message says it: each means no room for the file, whatever was written
NO_ROOM = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
           errno.EFBIG: "the file is over the largest its file system (or ulimit -f) allows"}
# How FFmpeg and libsndfile spell them where no errno comes with the error
NO_ROOM_WORDS = {"no space left": errno.ENOSPC, "disk quota": errno.EDQUOT, "file too large": errno.EFBIG}
# libsndfile's write errors ("System error.") and torch's ("file write failed") carry no errno: such
# a failure with no more than this left free on the folder's file system is taken as a full disk.
NEARLY_FULL = 64 * 1024


def no_room(exc: BaseException, folder: Path) -> Optional[str]:
    """The cause, when writing into ``folder`` failed with ``exc`` for want of room; else None."""
    if isinstance(exc, (KeyboardInterrupt, S3tvrError)):
        return None
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return NO_ROOM.get(code)
    text = str(exc).lower()
    for words, code in NO_ROOM_WORDS.items():
        if words in text:
            return NO_ROOM[code]
    if not isinstance(exc, (OSError, RuntimeError)) and not type(exc).__module__.startswith("av."):
        return None  # a bug or a refusal (ValueError, TypeError …): not the disk's doing, however full it is
    free = free_space(folder)
    return NO_ROOM[errno.ENOSPC] if free is not None and free <= NEARLY_FULL else None


def free_space(folder: Path) -> Optional[int]:
    """Bytes this user may still write on ``folder``'s file system (None if it cannot be told)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return None
    return st.f_bavail * st.f_frsize


def mount_point(folder: Path) -> Path:
    """The file system's root that holds ``folder``: where the space is to be freed."""
    path = Path(os.path.abspath(folder))
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def size_text(n: float) -> str:
    """Bytes as a person reads them: 812 bytes, 61 KB, 12 MB, 1.8 GB (units of 1024, as df -h)."""
    if n < 1024:
        return f"{n:.0f} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1024
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if n < 10 else f"{n:.0f} {unit}"
    raise AssertionError("unreachable")


def audio_bytes(frames: int, channels: int = 1, format: str = "WAV") -> int:
    """About the size of a 16-bit sound file: a WAV's exactly, FLAC's and Ogg Vorbis's at their usual ratio."""
    pcm = int(frames) * channels * 2
    return {"WAV": 44 + pcm, "FLAC": pcm * 6 // 10}.get(format.upper(), pcm // 8)


class Partial:
    """``path`` written whole or not at all: written under :func:`partial_path`, flushed to the disk
    (fsync) and renamed into place by :meth:`commit`. On any failure (an OSError, libsndfile's or
    FFmpeg's error, Ctrl-C) the partial is removed, and a full disk is raised as :class:`DiskFull`
    naming the path, the space needed and where it is short. Whatever was at ``path`` before stays
    as it was until the rename replaces it whole. ``size``: the bytes to be written, or an estimate;
    ``flag``: the option that puts the file elsewhere, for the message. Most writers use
    :func:`atomic_write`; :class:`SoundFileWriter` holds one across its calls."""

    def __init__(self, path: str | Path, suffix: str = "", size: Optional[int] = None, flag: Optional[str] = None):
        self.path = Path(path)
        self.tmp = partial_path(self.path, suffix)
        self.size = size
        self.flag = flag

    def commit(self, keep: bool = False) -> None:
        """Flush and rename into place. ``keep``: if the rename alone fails and not for room, the
        finished partial stays (the caller says where it is) and the OSError is raised."""
        try:
            _sync(self.tmp)  # a delayed allocation or a network file system says "no room" here, not at write
        except BaseException as exc:
            self.fail(exc)
            raise
        try:
            os.replace(self.tmp, self.path)
        except BaseException as exc:
            if not (keep and isinstance(exc, OSError) and no_room(exc, self.tmp.parent) is None):
                self.fail(exc)
            raise
        try:
            _sync(self.path.parent)  # the rename itself on the disk
        except OSError:  # a folder cannot be opened or synced everywhere (Windows, some network file systems)
            pass

    def fail(self, exc: BaseException) -> None:
        """After ``exc`` while writing: the partial removed, and a DiskFull raised in place of
        ``exc`` when the disk is the cause (else the caller re-raises ``exc``)."""
        try:
            written = self.tmp.stat().st_size
        except OSError:
            written = 0
        cause = no_room(exc, self.tmp.parent)  # before the partial is removed: how full the disk was
        self.tmp.unlink(missing_ok=True)
        if cause is None:
            return
        folder = self.path.parent
        free = free_space(folder)
        needed = max(self.size or 0, written)  # an estimate may fall short of what was already written
        room = [f"needs about {size_text(needed)}" if self.size else f"needs more than {size_text(written)}" if written else ""]
        if cause != NO_ROOM[errno.EFBIG]:  # the free space is beside the point there
            room += [f"{size_text(free)} free on {mount_point(folder)}" if free is not None else ""]
        room_text = ", ".join(r for r in room if r)
        if cause == NO_ROOM[errno.EFBIG]:  # no space to free: another kind of file system holds it
            fix = f"give {self.flag} on another file system or raise the limit" if self.flag else "raise the limit or write elsewhere"
        else:
            fix = f"free space or give {self.flag} on another disk" if self.flag else "free space there and run it again"
        raise DiskFull(f"cannot write {self.path}: {cause}{f' ({room_text})' if room_text else ''}: {fix}") from None


def _sync(path: Path) -> None:
    """``path`` (a file, or a folder's entries) flushed to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | Path, suffix: str = "", size: Optional[int] = None, flag: Optional[str] = None) -> Iterator[Path]:
    """Where to write ``path``'s content: the body writes the partial this yields, which is renamed
    into place when the body ends; see :class:`Partial` for what happens on a failure."""
    partial = Partial(path, suffix, size, flag)
    try:
        yield partial.tmp
    except BaseException as exc:
        partial.fail(exc)
        raise
    partial.commit()


def write_bytes(path: Path, data: bytes, flag: Optional[str] = None) -> None:
    with atomic_write(path, size=len(data), flag=flag) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str, flag: Optional[str] = None) -> None:
    write_bytes(path, text.encode("utf-8"), flag)


def write_json(path: Path, data: Any, flag: Optional[str] = None) -> None:
    write_text(path, json.dumps(data, indent=1, ensure_ascii=False, default=lambda x: None) + "\n", flag)


def copy_file(src: Path, dst: Path, flag: Optional[str] = None) -> None:
    with atomic_write(dst, size=src.stat().st_size, flag=flag) as tmp:
        shutil.copyfile(src, tmp)


def write_png(path: str | Path, figure: Any, dpi: int = 110, flag: Optional[str] = None) -> None:
    """A matplotlib figure as a PNG."""
    with atomic_write(path, flag=flag) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)


def write_wav(path: Path, audio: np.ndarray, rate: int, flag: Optional[str] = None) -> None:
    """16-bit WAV; ``audio``: (samples,) or (samples, channels)."""
    with atomic_write(path, size=audio_bytes(len(audio), audio.shape[1] if audio.ndim > 1 else 1), flag=flag) as tmp:
        write_sound(tmp, audio, rate, "WAV")


def write_sound(path: Path, audio: np.ndarray, rate: int, format: str) -> None:
    """soundfile.write (its default subtype: 16-bit for WAV and FLAC), but a failure for room raised
    as the OSError it was: libsndfile's exception says only "System error." (written into a
    :func:`atomic_write` partial, as every caller does)."""
    audio = np.asarray(audio)
    channels = audio.shape[1] if audio.ndim > 1 else 1
    file = sf.SoundFile(path, "w", samplerate=rate, channels=channels, format=format)
    try:
        file.write(audio)
    except sf.LibsndfileError as exc:
        cause = sound_file_error(file, exc)
        _close(file)
        if cause is exc:
            raise
        raise cause from exc
    file.close()


def sound_file_error(file: sf.SoundFile, exc: Exception) -> Exception:
    """``exc`` from a write to the open ``file``, as an OSError with its errno when libsndfile's own
    account of it (kept on the file until it is closed: "System error : No space left on device.")
    names a want of room; else ``exc``."""
    try:  # not part of soundfile's API: where it changes, the free space tells a full disk instead
        detail = sf._ffi.string(sf._snd.sf_strerror(file._file)).decode(errors="replace")
    except Exception:
        return exc
    code = next((c for words, c in NO_ROOM_WORDS.items() if words in detail.lower()), None)
    return OSError(code, os.strerror(code)) if code is not None else exc


def _close(file: sf.SoundFile) -> None:
    """Close a file whose write failed already (closing may fail too: the first error is the one told)."""
    try:
        file.close()
    except (OSError, sf.LibsndfileError):
        pass


class SoundFileWriter:
    """A sound file written as the audio comes, under a hidden partial name, and renamed into place
    by :meth:`finish` (on a stop too): the path never holds half a file, and nothing written is lost.
    A write that fails (a full disk) removes the partial and is raised as a one-line error.
    ``expect_s``: how long the file will be, when known (for the space a full disk's message asks for)."""

    SUFFIXES = (".wav", ".flac", ".ogg")

    def __init__(self, path: str | Path, flag: str = "--output"):
        self.path = Path(path)
        self.flag = flag
        self.partial = Partial(self.path, flag=flag)
        self.tmp = self.partial.tmp
        self.samples = 0  # written so far
        self.rate = 0
        self.expect_s = 0.0
        self._file: Any = None

    def check(self) -> None:
        if self.path.suffix.lower() not in self.SUFFIXES:
            raise InputError(f"{self.flag} {self.path}: write .wav, .flac or .ogg")
        check_output(self.path, self.flag)

    @property
    def is_open(self) -> bool:
        return self._file is not None

    def open(self, rate: int) -> None:
        self.rate = rate
        try:
            self._file = sf.SoundFile(self.tmp, "w", samplerate=rate, channels=1, format=self.path.suffix[1:].upper())
        except (OSError, sf.LibsndfileError, TypeError) as exc:
            self._failed(exc, 0)
            raise InputError(f"cannot write {self.path}: {exc}") from None

    def write(self, samples: np.ndarray) -> None:
        try:
            self._file.write(samples)
        except (OSError, sf.LibsndfileError) as exc:  # not a stop (KeyboardInterrupt): that finishes the file with what it holds
            self._failed(sound_file_error(self._file, exc), len(samples))
            raise InputError(f"cannot write {self.path}: {brief(exc)}") from None
        self.samples += len(samples)

    def finish(self) -> bool:
        """Close and rename into place; False if nothing was ever opened."""
        if self._file is None:
            return False
        file, self._file = self._file, None
        try:
            file.close()  # the header written last
        except (OSError, sf.LibsndfileError) as exc:
            self._failed(exc, 0)
            raise InputError(f"cannot write {self.path}: {brief(exc)}") from None
        try:
            self.partial.commit(keep=True)
        except OSError as exc:  # never reported as written: say where the finished audio is, if it was kept
            kept = f"; the translation is in {self.tmp}" if self.tmp.exists() else ""
            raise InputError(f"cannot write {self.path}: {exc.strerror or exc}{kept}") from None
        return True

    def discard(self) -> None:
        """Leave no file behind (nothing worth keeping was written)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp.unlink(missing_ok=True)

    def _failed(self, exc: BaseException, more: int) -> None:
        """After a failed write: the file closed, the partial removed, and DiskFull raised for a full disk."""
        if self._file is not None:
            file, self._file = self._file, None
            _close(file)
        frames = max(self.samples + more, int(self.expect_s * self.rate))
        self.partial.size = audio_bytes(frames, 1, self.path.suffix[1:]) if frames else None
        self.partial.fail(exc)
