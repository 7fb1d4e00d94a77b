"""Where the benchmarks find the shared evaluation data: real recordings and texts that nobody on
this project made (FLEURS, LJSpeech, FLORES-200, noise, a video; benchmarks/README.md, "The data"),
kept outside the repository. A benchmark takes the folder as ``--data DIR``; without it,
``$S3TVR_DATA``; without that, ``shared/data`` beside the checkout (``../shared/data``).

    .venv/bin/python benchmarks/bench_vad.py --data /data/s3tvr-shared
    S3TVR_DATA=/data/s3tvr-shared bash benchmarks/bench_eval.sh
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_chosen: Path | None = None


def root() -> Path:
    """The data folder: the one ``use`` was given, else $S3TVR_DATA, else ../shared/data."""
    return _chosen or Path(os.environ.get("S3TVR_DATA") or DEFAULT)


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help=f"the shared data folder (default: $S3TVR_DATA, else {DEFAULT}; benchmarks/README.md)")


def use(data: Path | None) -> Path:
    """Take ``--data`` (None: the default) for this process and the benchmarks it starts."""
    global _chosen
    if data is not None:
        _chosen = data.resolve()
        os.environ["S3TVR_DATA"] = str(_chosen)
    folder = root()
    if not folder.is_dir():
        raise SystemExit(f"no shared data at {folder}: give its folder with --data DIR or S3TVR_DATA (benchmarks/README.md)")
    return folder


def speech(*parts: str) -> Path:
    return root().joinpath("speech", *parts)


def flores() -> Path:
    """FLORES-200 devtest, line-aligned (eng_Latn, spa_Latn, rus_Cyrl)."""
    return root() / "text" / "flores200_devtest"


def talk() -> Path:
    """The shared 60 s Spanish talk with natural pauses (Silero VAD's example, MIT)."""
    return speech("long", "silero_es.wav")
