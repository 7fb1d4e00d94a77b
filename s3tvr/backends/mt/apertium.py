"""MT with Apertium, the rule-based translator Debian packages (``apertium`` + a pair such as
``apertium-eng-spa``): no weights, no GPU, about a millisecond a sentence once running.

Apertium is a Unix pipeline of about a dozen programs (analyser, tagger, transfer, generator).
Starting it costs about 0.6 s, almost all of a short sentence's time, so one pipeline runs for the
model's whole life in null-flush mode: each sentence goes in followed by a NUL, and every program
passes the NUL on and flushes, so the translation comes out followed by a NUL. lttoolbox 3.7's
bilingual lookup ignores the flush (its output stays in its stdio buffer until the input ends), so
the pipeline runs under coreutils' ``stdbuf -o0``, which unbuffers every program in it.

A pipeline that dies (killed, out of memory) is started again for the sentence; one that cannot
start, dies on the same sentence twice, or does not answer within ``timeout_s``, fails that
utterance with the reason (a fresh pipeline waits for the next one).
"""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Optional

from s3tvr.backends.kinds import MtBackend
from s3tvr.bounds import Range
from s3tvr.errors import SetupError, brief

log = logging.getLogger(__name__)

MODES_DIR = Path("/usr/share/apertium/modes")

# Apertium names a language by its ISO 639-3 code (older pairs by ISO 639-1: es-pt, fr-es).
ISO3 = {"en": "eng", "es": "spa", "fr": "fra", "it": "ita", "pt": "por", "ca": "cat", "gl": "glg", "ro": "ron",
        "de": "deu", "nl": "nld", "ru": "rus", "uk": "ukr", "pl": "pol", "eu": "eus", "eo": "epo", "oc": "oci"}

# The Debian package holding each pair s3tvr's voices can speak, for the install hint.
DEBIAN_PACKAGES = {frozenset({"en", "es"}): "apertium-eng-spa", frozenset({"es", "pt"}): "apertium-es-pt",
                   frozenset({"es", "it"}): "apertium-spa-ita", frozenset({"es", "fr"}): "apertium-fr-es",
                   frozenset({"en", "ca"}): "apertium-eng-cat", frozenset({"es", "ca"}): "apertium-spa-cat"}

# Characters the Apertium stream format reserves. Escaping them with a backslash, as the format
# allows, is not safe: lrx-proc (lttoolbox 3.7) never passes on the NUL flush after an escaped caret
# at the end of a sentence ("a b^"), so the pipeline hangs. Each goes in as a character of Unicode's
# private use area instead, which the dictionaries do not know (so it is a blank, passed through
# untouched), and is put back on the way out; private use characters in the input itself are spaces.
_RESERVED = "\\[]^$/@<>{}*#+~"
_PRIVATE = "".join(chr(0xE000 + i) for i in range(len(_RESERVED)))
_INTO_PRIVATE = str.maketrans(_RESERVED, _PRIVATE)
_FROM_PRIVATE = str.maketrans(_PRIVATE, _RESERVED)
_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


@dataclass
class Config:
    mode: str = ""  # an installed mode (e.g. spa-eng_US); default the pair's own, e.g. eng-spa
    modes_dir: str = str(MODES_DIR)  # where the installed pairs' .mode files are
    timeout_s: Annotated[float, Range(1, 600)] = 10.0  # the longest one sentence may take (milliseconds are usual)


class Backend(MtBackend):
    backend = "apertium"

    def __init__(self, config: Config, src_lang: str, tgt_lang: str, device: str = "cpu", dtype: str = "auto"):
        # device and dtype do not apply: Apertium runs on the CPU, rules not weights
        super().__init__(src_lang, tgt_lang)
        self.config = config
        self.mode_file = find_mode(Path(config.modes_dir), src_lang, tgt_lang, config.mode)
        self.process: Optional[subprocess.Popen] = None
        self.errors: Optional[IO[bytes]] = None  # the pipeline's stderr, kept for the reason it died
        self.starts = 0  # how many pipelines were started (tests and the log read it)

    def setup(self) -> None:
        for program in ("stdbuf", "bash", "apertium-wblank-mode"):
            if shutil.which(program) is None:
                raise SetupError(f"Apertium MT needs {program}, which is not installed: apt-get install apertium coreutils")
        self._start()

    def translate(self, sentences: list[str], *, utt_id: int = 0) -> list[str]:
        return [self._translate_one(s) for s in sentences]

    def cleanup(self) -> None:
        self._stop()

    def _translate_one(self, sentence: str) -> str:
        text = " ".join(sentence.replace("\0", " ").split())
        if not text:
            return ""
        try:
            return self._ask(text)
        except TimeoutError as exc:  # the same sentence would hang a new pipeline too: the next one gets it
            reason = self._reason(exc)
            self._stop()
            raise RuntimeError(f"Apertium {self.mode_file.stem} did not answer ({reason})") from None
        except OSError as exc:  # the pipeline died: one restart, then this sentence fails
            log.warning("Apertium %s stopped (%s): starting it again", self.mode_file.stem, self._reason(exc))
            self._start()
            try:
                return self._ask(text)
            except OSError as again:
                reason = self._reason(again)
                self._stop()  # the next sentence starts a fresh one
                raise RuntimeError(f"Apertium {self.mode_file.stem} failed twice on one sentence ({reason})") from None

    def _ask(self, text: str) -> str:
        if self.process is None or self.process.poll() is not None:
            self._start()
        assert self.process is not None and self.process.stdin and self.process.stdout
        # A trailing newline ends the sentence for the tagger (as Apertium's own text deformatter
        # does): without it the final full stop is read as part of the last word.
        self.process.stdin.write(safe_for_stream(text).encode() + b"\n\0")
        self.process.stdin.flush()
        out = self._read_until_nul(self.process.stdout.fileno())
        return out.decode("utf-8", errors="replace").translate(_FROM_PRIVATE).strip()

    def _read_until_nul(self, fd: int) -> bytes:
        out = b""
        while not out.endswith(b"\0"):
            ready, _, _ = select.select([fd], [], [], self.config.timeout_s)
            if not ready:
                raise TimeoutError(f"no answer in {self.config.timeout_s:g} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise BrokenPipeError("the pipeline ended")
            out += chunk
        return out[:-1]

    def _start(self) -> None:
        self._stop()
        try:
            pipeline = subprocess.run(["apertium-wblank-mode", "-z", str(self.mode_file)], capture_output=True, text=True,
                                      check=True).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise SetupError(f"could not read Apertium mode {self.mode_file} ({brief(exc)}): "
                             f"reinstall it (apt-get install --reinstall apertium {self._package()})") from None
        self.errors = tempfile.TemporaryFile()
        # $1 -n: the generator writes unknown words plainly, without Apertium's * and # marks; $2: the tagger's options
        self.process = subprocess.Popen(["stdbuf", "-o0", "bash", "-c", pipeline, "apertium", "-n", ""],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors,
                                        start_new_session=True)  # a Ctrl-C for s3tvr is not sent to the pipeline
        self.starts += 1
        log.debug("Apertium %s started (pid %d)", self.mode_file.stem, self.process.pid)

    def _stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            for stream in (process.stdin, process.stdout):
                try:
                    stream.close()  # type: ignore[union-attr]
                except OSError:
                    pass
            try:
                os.killpg(process.pid, 9)  # the whole pipeline, not only its bash
            except ProcessLookupError:
                pass
            process.wait()
        if self.errors is not None:
            self.errors.close()
            self.errors = None

    def _reason(self, exc: BaseException) -> str:
        """Why the pipeline stopped: its last line on stderr, or the error met reading it."""
        if self.errors is not None:
            self.errors.seek(0)
            lines = self.errors.read().decode("utf-8", errors="replace").strip().splitlines()
            if lines:
                return lines[-1]
        return brief(exc)

    def _package(self) -> str:
        return DEBIAN_PACKAGES.get(frozenset({self.src_lang, self.tgt_lang}), "apertium-<pair>")


def safe_for_stream(text: str) -> str:
    """``text`` as Apertium's stream format can carry it whole: no reserved character, no NUL."""
    return _PRIVATE_USE.sub(" ", text).translate(_INTO_PRIVATE)


def installed_modes(modes_dir: Path = MODES_DIR) -> list[str]:
    """The translation modes installed, e.g. ['eng-spa', 'spa-eng', 'spa-eng_US']."""
    return sorted(p.stem for p in modes_dir.glob("*.mode")) if modes_dir.is_dir() else []


def find_mode(modes_dir: Path, src: str, tgt: str, mode: str = "") -> Path:
    """The .mode file translating ``src`` into ``tgt`` (or the one named), or a SetupError naming
    the Debian package to install."""
    names = [mode] if mode else [f"{ISO3.get(src, src)}-{ISO3.get(tgt, tgt)}", f"{src}-{tgt}"]
    for name in names:
        if (modes_dir / f"{name}.mode").is_file():
            return modes_dir / f"{name}.mode"
    have = ", ".join(installed_modes(modes_dir)) or "none"
    if mode:
        raise SetupError(f"Apertium mode {mode} is not installed (installed: {have}): give one of those as mt.mode")
    package = DEBIAN_PACKAGES.get(frozenset({src, tgt}))
    if shutil.which("apertium") is None:
        fix = f"apt-get install apertium {package or ''}".strip()
        raise SetupError(f"Apertium is not installed, which the offline {src}->{tgt} translation needs: {fix}")
    if package:
        raise SetupError(f"Apertium has no {src}->{tgt} pair installed (installed: {have}): apt-get install {package}")
    raise SetupError(f"Debian has no Apertium pair for {src}->{tgt} (installed: {have}; apt-cache search apertium- lists "
                     f"them): translate with the model stack instead (--config stack)")

