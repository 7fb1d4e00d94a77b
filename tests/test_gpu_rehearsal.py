"""The day a GPU is lent, rehearsed here: the one device command (scripts/gpu_run.sh ->
benchmarks/gpu/gpu_run.py) on the CPU with the tiny models, and the kit that carries the wheels the GPU
machine lacks (scripts/gpu_kit.py), with fake wheels where no registry is reachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

# Every step the run plans with --tiny on the CPU (one dtype: float32), in order.
TINY_STEPS = ["env", "build-tiny", "measure-nemo-ctc-tiny-float32", "measure-nllb-tiny-float32",
              "measure-xtts-tiny-float32", "chain-en-es", "chain-es-en", "concurrency-en-es", "deepspeed-xtts"]
FIGURES = {  # what each measured step must hold
    "measure-nemo-ctc-tiny-float32": ["load_s", "asr_3s", "peak_rss_mb", "nonfinite"],
    "measure-nllb-tiny-float32": ["load_s", "mt_8_tokens", "peak_rss_mb", "nonfinite"],
    "measure-xtts-tiny-float32": ["load_s", "tts_1s_first_chunk", "tts_1s_rtf", "nonfinite"],
    "chain-en-es": ["first_audio_s", "median_s", "loads"],
    "concurrency-en-es": ["levels", "held_at_2x"],
}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHON": sys.executable, "HOME": str(tmp_path), **extra}


@pytest.mark.stack
def test_gpu_run_rehearsal_records_every_step_and_goes_on_past_a_failed_one(tmp_path):
    """The device command with --tiny on the CPU, one step (chain-es-en) made to fail: every step is
    in the JSON with figures or a reason, the failure is recorded, and the steps after it still ran.
    The step limits, scaled 20x, guard against a hang only: this machine's speed is not under test."""
    out, kit = tmp_path / "out", tmp_path / "no-kit"  # no kit: the CPU venv has the whole stack
    kit.mkdir()
    proc = subprocess.run(["bash", str(REPO / "scripts/gpu_run.sh"), "--tiny", "--device", "cpu", "--work",
                           str(tmp_path / "work"), "--fail", "chain-es-en", "--limit-scale", "20"],
                          capture_output=True, text=True, env=_env(tmp_path, OUT=str(out), GPU_KIT=str(kit)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_run.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == TINY_STEPS
    for name, step in steps.items():
        assert step["status"] in ("ok", "skipped", "failed", "timeout")
        assert step["figures"] or step["reason"], name
    assert steps["chain-es-en"]["status"] == "failed" and "on purpose" in steps["chain-es-en"]["reason"]
    ok = [n for n in TINY_STEPS if n != "chain-es-en" and n != "deepspeed-xtts"]
    assert [n for n in ok if steps[n]["status"] != "ok"] == [], {n: steps[n]["reason"] for n in ok}
    for name, keys in FIGURES.items():
        assert set(keys) <= set(steps[name]["figures"]), (name, steps[name]["figures"])
    assert steps["measure-nllb-tiny-float32"]["figures"]["nonfinite"]["outputs_checked"] > 0
    assert set(steps["concurrency-en-es"]["figures"]["levels"]) == {"1", "2"}
    assert steps["deepspeed-xtts"]["status"] == "skipped" and "CUDA" in steps["deepspeed-xtts"]["reason"]
    assert "chain-es-en" in (out / "gpu_run.log").read_text()


def test_gpu_run_rehearsal_kills_a_step_past_its_limit_and_skips_past_the_budget(tmp_path):
    """A step that never ends is killed at its limit (3 s: 60 x 0.05) and recorded; once the run's
    budget (12.5 s: 250 x 0.05) has under 10 s left, the remaining steps are recorded as skipped, with
    that reason, and the JSON is still whole. Whatever this machine's speed: the step never ends."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks/gpu/gpu_run.py"), "--out", str(out), "--tiny", "--device",
                           "cpu", "--work", str(tmp_path / "work"), "--hang", "env", "--budget-s", "250",
                           "--limit-scale", "0.05"], capture_output=True, text=True, env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = {s["name"]: s for s in json.loads((out / "gpu_run.json").read_text())["steps"]}
    assert list(steps) == TINY_STEPS
    assert steps["env"]["status"] == "timeout" and "past its 3 s limit" in steps["env"]["reason"]
    for name in TINY_STEPS[1:]:
        assert steps[name]["status"] == "skipped" and "budget is spent" in steps[name]["reason"], steps[name]


# -- the kit --------------------------------------------------------------------------------------

def fake_wheel(folder: Path, name: str, version: str, kib: int, requires: tuple[str, ...] = ()) -> Path:
    """An installable pure-Python wheel of ``kib`` KiB (incompressible bytes) importing as ``name``."""
    module = name.replace("-", "_")
    path = folder / f"{module}-{version}-py3-none-any.whl"
    info = f"{module}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{module}/__init__.py", "")
        z.writestr(f"{module}/blob.bin", os.urandom(kib * 1024))
        z.writestr(f"{info}/METADATA", meta)
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def wheels(tmp_path):
    """Fake wheels of every package the kit gathers: 'session' 60 KiB, 'xtts' about 6, 'nemo' 40
    (nemo-toolkit alone); coqui-tts asks for a transformers older than the GPU machine's."""
    sys.path.insert(0, str(REPO / "scripts"))
    import gpu_kit

    folder = tmp_path / "wheels"
    folder.mkdir()
    sizes = {"av": 60, "nemo-toolkit": 40}
    for spec in gpu_kit.GROUPS.values():
        for name in spec["packages"]:
            requires = ("transformers<5", "numpy>=1.26") if name == "coqui-tts" else ()
            fake_wheel(folder, name, "1.0", sizes.get(name, 1), requires)
    return folder


def kit(tmp_path: Path, wheels: Path, limit_mib: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "scripts/gpu_wheels.sh"), "--from", str(wheels), "--kit",
                           str(tmp_path / "gpu-kit"), "--limit-mib", str(limit_mib), "--flores", str(tmp_path / "no-flores")],
                          capture_output=True, text=True, env=_env(tmp_path))


def test_gpu_kit_under_its_limit_holds_every_group_and_installs_with_the_run_s_line(tmp_path, wheels):
    proc = kit(tmp_path, wheels, 1.0)
    assert proc.returncode == 0, proc.stderr
    held = sorted(p.name for p in (tmp_path / "gpu-kit").glob("*.whl"))
    assert held == sorted(p.name for p in wheels.glob("*.whl"))
    assert (tmp_path / "gpu-kit/GROUPS").read_text().split() == ["session", "xtts", "nemo"]
    assert "dropped" not in proc.stdout
    assert "coqui_tts-1.0-py3-none-any.whl" in proc.stdout and "CONFLICT: transformers<5 (the machine has 5.17.0)" in proc.stdout
    # The run's own install line (scripts/gpu_run.sh --install-only), offline, into a folder of its own.
    site, out = tmp_path / "site", tmp_path / "out"
    run = subprocess.run(["bash", str(REPO / "scripts/gpu_run.sh"), "--install-only"], capture_output=True, text=True,
                         env=_env(tmp_path, GPU_KIT=str(tmp_path / "gpu-kit"), GPU_SITE=str(site), OUT=str(out)))
    assert (site / "nemo_toolkit/blob.bin").stat().st_size == 40 * 1024, (out / "install.log").read_text()
    assert "kit groups: session, xtts, nemo" in run.stdout


def test_gpu_kit_over_its_limit_says_what_it_dropped(tmp_path, wheels):
    # 0.1 MiB: 'session' (about 64 KiB) and 'xtts' fit, 'nemo' (about 70 KiB more) does not.
    proc = kit(tmp_path, wheels, 0.1)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "gpu-kit/GROUPS").read_text().split() == ["session", "xtts"]
    assert not list((tmp_path / "gpu-kit").glob("nemo_toolkit-*.whl"))
    dropped = [line for line in proc.stdout.splitlines() if line.startswith("dropped [nemo]")]
    assert dropped and "leaves out NeMo's measures" in dropped[0] and "under the 0.1 MiB limit" in dropped[0]
    total = sum(p.stat().st_size for p in (tmp_path / "gpu-kit").glob("*.whl"))
    assert total <= 0.1 * 2**20
