"""What every ASR backend shares: :func:`pass_cost_s`, what one simultaneous pass costs on this
machine, which mode auto (s3tvr.live.simultaneous.auto_mode) and ``asr.model=auto`` decide by."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

from s3tvr.audio import SAMPLE_RATE
from s3tvr.backends.kinds import AsrBackend

log = logging.getLogger(__name__)

# 10 s of read English speech (LJSpeech LJ001-0001, public domain): the buffer a pass typically
# re-reads (simultaneous.trim_s), as dense as speech comes, so the calibration errs on the slow side.
CALIBRATION_CLIP = Path(__file__).parents[2] / "data" / "calibration.ogg"


def pass_cost_s(asr: AsrBackend) -> Optional[float]:
    """What one simultaneous pass over 10 s of speech costs on this machine, in seconds (the
    second of two passes: the first pays for warm-up); None if ``asr`` cannot recognise
    incrementally (then simultaneous mode is not possible at all)."""
    from s3tvr.audio.decode import load_audio

    audio = load_audio(CALIBRATION_CLIP, SAMPLE_RATE)
    cost = None
    for _ in range(2):
        t0 = time.perf_counter()
        try:
            asr.hypothesis(audio, "", "en")
        except NotImplementedError:
            return None
        except Exception as exc:  # a failed measurement must not stop the run: sentence mode needs none
            log.warning("could not time a recognition pass (%s: %s)", type(exc).__name__, exc)
            return None
        cost = time.perf_counter() - t0
    return cost
