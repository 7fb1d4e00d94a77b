"""A short soak: minutes of speech through the whole chain in fast mode with scripted backends."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "soak.py"


@pytest.mark.slow
def test_five_minutes_of_speech_lose_no_utterance_and_keep_memory_flat():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--minutes", "5"], capture_output=True, text=True, timeout=300)
    stats = json.loads(proc.stdout.splitlines()[-1])
    assert proc.returncode == 0, (stats, proc.stderr[-2000:])
    assert stats["lost"] == [] and stats["duplicated"] == 0 and stats["in_order"] and stats["errors"] == 0
    assert stats["utterances"] >= 0.9 * stats["expected_about"]
    assert stats["rss_growth_mb"] < 25
