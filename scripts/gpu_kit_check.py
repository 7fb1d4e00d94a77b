"""After the kit's wheels went on with --no-deps: prove that what each packed group serves imports
(a dependency the kit lacks shows here, named, before the run spends device time on it).

    python scripts/gpu_kit_check.py [--kit gpu-kit]     # exit 1 when a packed group does not import
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("s3tvr.gpu_kit_check")

ROOT = Path(__file__).resolve().parent.parent
# What each group of scripts/gpu_kit.py serves: the modules s3tvr's stack backends and a Session import.
CHECKS = {
    "session": ["av", "soundfile", "soxr", "silero_vad", "s3tvr.live.session", "s3tvr.audio.decode"],
    "xtts": ["TTS.tts.models.xtts", "TTS.tts.layers.xtts.tokenizer", "s3tvr.backends.tts.xtts"],
    "nemo": ["nemo.collections.asr.models", "s3tvr.backends.asr.nemo"],
}


@dataclass
class Check:
    group: str
    module: str
    error: str = ""


def check(groups: list[str]) -> list[Check]:
    results = []
    for group in groups:
        for module in CHECKS.get(group, []):
            try:
                importlib.import_module(module)
                results.append(Check(group, module))
            except Exception as exc:  # any import error names the missing piece
                results.append(Check(group, module, f"{exc.__class__.__name__}: {exc}"))
    if "session" in groups:  # the slimmed Silero wheel must still hold the model s3tvr loads
        try:
            from silero_vad import load_silero_vad

            load_silero_vad(onnx=True)
            results.append(Check("session", "silero_vad.onnx"))
        except Exception as exc:
            results.append(Check("session", "silero_vad.onnx", f"{exc.__class__.__name__}: {exc}"))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kit", type=Path, default=ROOT / "gpu-kit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.path.insert(0, str(ROOT))
    groups_file = args.kit / "GROUPS"
    groups = groups_file.read_text().split() if groups_file.is_file() else []
    results = check(groups)
    for r in results:
        log.info("%-8s %-32s %s", r.group, r.module, "ok" if not r.error else "FAILED " + r.error)
    log.info("kit groups: %s", ", ".join(groups) or "none (no gpu-kit/GROUPS)")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
