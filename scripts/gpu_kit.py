"""The GPU kit: the wheels the lent GPU machine lacks for the model stack, gathered here.

That machine (Python 3.12, torch 2.11 (CUDA 13), torchaudio, transformers 5.17, numpy 2.5 …;
the list is in /work/.library/device/KINDS.md) reaches no registry, and what travels with a call is
the working tree plus at most 64 MiB of carried files. So this collects, one version each (the
versions in locks/stack.txt), exactly the wheels it lacks, in groups by what they serve, and packs
the groups in order of need while they fit: a group that does not fit is dropped whole (half of
NeMo's dependencies import nothing) and said so. Each wheel goes on with ``pip install --no-deps``,
so its Requires-Dist is checked here against the machine's torch/transformers/numpy instead.

    scripts/gpu_wheels.sh                       # download into gpu-kit/, print what it holds
    scripts/gpu_wheels.sh --from DIR            # take the wheels from DIR (no registry)
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("s3tvr.gpu_kit")

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20
# The shared data folder as the benchmarks find it ($S3TVR_DATA, else ../shared/data: benchmarks/shared_data.py)
FLORES = Path(os.environ.get("S3TVR_DATA") or ROOT.parent / "shared/data") / "text/flores200_devtest"
TRAVEL_LIMIT = 64 * MIB  # what one device call carries: the working tree and the kit together

# What the GPU machine already has, at the versions its Requires-Dist are checked against (KINDS.md's
# pip list). Its lightning's version is not listed; NeMo 3.0.0 asks for lightning<=2.4.0, so the kit
# carries the locked 2.4.0, which goes first on the path there.
MACHINE = {"torch": "2.11.0", "torchaudio": "2.11.0", "transformers": "5.17.0", "numpy": "2.5.2",
           "tokenizers": "0.23.2", "huggingface-hub": "1.33.0", "safetensors": "0.8.0", "sentencepiece": "0.2.2",
           "torchmetrics": "1.9.0", "pytorch-lightning": "2.6.6", "onnx": "1.23.1", "accelerate": "1.15.0"}
# The extras whose requirements count: the ones s3tvr's stack installs (nemo-toolkit[asr]).
EXTRAS = {"nemo-toolkit": ("asr", "core")}

# The groups, in packing order. Found by importing what s3tvr's stack backends and a live Session
# import (the stack's model classes, NeMo's ASRModel / EncDecCTCModelBPE / EncDecHybridRNNTCTCBPEModel,
# coqui-tts's Xtts and its tokenizer) in the CPU venv, and keeping the distributions that loaded and
# that the machine's package list lacks. NeMo's full install asks for far more (its [asr] extra
# pulls in e.g. pyannote, nemo_text_processing, editdistance …), none of which the model classes import.
GROUPS: dict[str, dict] = {
    "session": {"why": "any live Session (s3tvr decodes audio with av, segments with Silero VAD)",
                "leaves_out": "the chain and concurrency steps (a Session cannot start)",
                "packages": ["av", "silero-vad", "soundfile", "soxr", "cffi"]},
    "xtts": {"why": "XTTS v2 through coqui-tts",
             "leaves_out": "XTTS's measures, and the chain and concurrency steps",
             "packages": ["coqui-tts", "coqui-tts-trainer", "coqpit-config", "anyascii", "num2words", "ko-speech-tools"]},
    "nemo": {"why": "NeMo's ASR model classes (Parakeet CTC, FastConformer hybrid)",
             "leaves_out": "NeMo's measures, and the chain and concurrency steps",
             "packages": ["nemo-toolkit", "hydra-core", "omegaconf", "antlr4-python3-runtime", "lhotse", "librosa",
                          "kaldialign", "intervaltree", "webdataset", "braceexpand", "datasets", "dill", "multiprocess",
                          "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "nv-one-logger-core",
                          "nv-one-logger-pytorch-lightning-integration", "nv-one-logger-training-telemetry",
                          "httpx2", "httpcore2", "trio", "outcome", "sniffio", "pysocks", "truststore", "strenum",
                          "cytoolz", "overrides", "toml", "lightning"]},
}
# Wheels that ship files the run never opens, repacked with only these (pip install --no-deps does
# not check RECORD): Silero VAD's wheel holds eight model variants (10.8 MiB); s3tvr loads
# silero_vad.onnx (vad.onnx, the default) or silero_vad.jit.
SLIM = {"silero-vad": ("silero_vad/data/silero_vad.onnx", "silero_vad/data/silero_vad.jit")}
# The full-size builders (benchmarks/gpu/stack_models.py) train their tokenizers on FLORES, which lives
# beside the checkout (../shared) and so does not travel: the kit carries the two files they read.
FLORES_FILES = ("eng_Latn.devtest", "spa_Latn.devtest")
# pip matches manylinux_2_N exactly: the N our wheels are built for.
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64",
             "manylinux_2_35_x86_64"]


@dataclass
class Wheel:
    name: str
    path: Path

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@dataclass
class Packed:
    kept: dict[str, list[Wheel]] = field(default_factory=dict)  # group -> its wheels
    dropped: dict[str, str] = field(default_factory=dict)  # group -> why
    missing: dict[str, list[str]] = field(default_factory=dict)  # group -> packages with no wheel found

    @property
    def total(self) -> int:
        return sum(w.size for wheels in self.kept.values() for w in wheels)


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: Path) -> dict[str, str]:
    return {norm(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", lock.read_text(), re.M)}


def wheel_name(path: Path) -> str:
    return norm(path.name.split("-")[0])


def download(name: str, version: str | None, dest: Path) -> Path | None:
    """One wheel for Python 3.12 on x86-64 Linux (or a pure-Python one), no dependencies: None when none exists."""
    spec = f"{name}=={version}" if version else name
    log.info("fetching %s", spec)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", *platforms, "-d", str(dest), spec]
    if subprocess.run(cmd, capture_output=True, text=True).returncode != 0:
        # Some small pure-Python packages ship only an sdist (antlr4-python3-runtime 4.9.3, which
        # omegaconf imports): built into a wheel here, kept only if it is pure Python.
        build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-binary=:all:", "-w", str(dest), spec]
        if subprocess.run(build, capture_output=True, text=True).returncode != 0:
            return None
    found = [p for p in dest.glob("*.whl") if wheel_name(p) == norm(name)]
    if found and "-none-" not in found[0].name and "cp312" not in found[0].name and "abi3" not in found[0].name:
        return None  # built for this machine's Python, not the GPU machine's
    return slim(found[0]) if found else None


def slim(wheel: Path) -> Path:
    """``wheel`` with only SLIM's files of its data (and its code and metadata), in place."""
    keep = SLIM.get(wheel_name(wheel))
    if keep is None:
        return wheel
    package = keep[0].split("/")[0]
    data = f"{package}/data/"
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            if item.filename.startswith(data) and item.filename not in keep and not item.filename.endswith(".py"):
                continue
            out.writestr(item, src.read(item))
    tmp.replace(wheel)
    return wheel


def gather(source: Path | None, staging: Path, versions: dict[str, str]) -> tuple[dict[str, Wheel], list[str]]:
    """Every group's wheels, from ``source`` (local wheels) or the registry; and the names found nowhere."""
    staging.mkdir(parents=True, exist_ok=True)
    local = {wheel_name(p): p for p in source.glob("*.whl")} if source else {}
    found: dict[str, Wheel] = {}
    missing: list[str] = []
    for group in GROUPS.values():
        for name in group["packages"]:
            key = norm(name)
            path = local.get(key) if source else download(name, versions.get(key), staging)
            if path is None:
                missing.append(key)
            else:
                found[key] = Wheel(key, path)
    return found, missing


def pack(found: dict[str, Wheel], missing: list[str], limit: int) -> Packed:
    """The groups in order while they fit under ``limit`` bytes; a group that does not fit is dropped
    whole, and later (smaller) groups may still fit."""
    packed = Packed()
    used = 0
    for group, spec in GROUPS.items():
        keys = [norm(n) for n in spec["packages"]]
        wheels = [found[k] for k in keys if k in found]
        absent = [k for k in keys if k in missing]
        if absent:
            packed.missing[group] = absent
        size = sum(w.size for w in wheels)
        if used + size > limit:
            packed.dropped[group] = (f"needs {size / MIB:.1f} MiB, {(limit - used) / MIB:.1f} MiB left under the "
                                     f"{limit / MIB:.1f} MiB limit: leaves out {spec['leaves_out']}")
            continue
        packed.kept[group] = wheels
        used += size
    return packed


def conflicts(wheel: Path) -> list[str]:
    """Requires-Dist lines of ``wheel`` (extras aside) that the GPU machine's versions do not meet."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = [line[len("Requires-Dist:"):].strip() for line in z.read(meta).decode().splitlines()
                 if line.startswith("Requires-Dist:")]
    out = []
    for line in lines:
        req = Requirement(line)
        extras = EXTRAS.get(wheel_name(wheel), ())
        if req.marker is not None and "extra" in str(req.marker) and not any(
                req.marker.evaluate({"extra": e}) for e in extras):
            continue
        have = MACHINE.get(norm(req.name))
        if have and req.specifier and not req.specifier.contains(have, prereleases=True):
            out.append(f"{req.name}{req.specifier} (the machine has {have})")
    return out


def tree_size() -> int:
    """Bytes of the tracked working tree: it travels with the kit, inside the same 64 MiB."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True).stdout.split(b"\0")
    return sum((ROOT / f.decode()).stat().st_size for f in files if f and (ROOT / f.decode()).is_file())


def write_kit(packed: Packed, kit: Path, flores: Path | None) -> None:
    if kit.exists():
        shutil.rmtree(kit)
    kit.mkdir(parents=True)
    for wheels in packed.kept.values():
        for w in wheels:
            shutil.copy2(w.path, kit / w.path.name)
    (kit / "GROUPS").write_text("\n".join(packed.kept) + "\n")  # which parts of the stack the kit serves
    if flores is not None:
        (kit / "flores").mkdir()
        for name in FLORES_FILES:
            shutil.copy2(flores / name, kit / "flores" / name)


def report(packed: Packed, limit: int, extra: int) -> None:
    print(f"gpu kit: {(packed.total + extra) / MIB:.1f} MiB of {limit / MIB:.1f} MiB "
          f"({packed.total / MIB:.1f} MiB of wheels, {extra / MIB:.1f} MiB of FLORES text)")
    for group, wheels in packed.kept.items():
        print(f"[{group}] {GROUPS[group]['why']}")
        for w in sorted(wheels, key=lambda w: -w.size):
            bad = conflicts(w.path)
            print(f"  {w.path.name:<80} {w.size / MIB:6.2f} MiB" + (f"  CONFLICT: {'; '.join(bad)}" if bad else ""))
    for group, names in packed.missing.items():
        print(f"not found [{group}]: {', '.join(names)} (no wheel for Python 3.12 x86-64)")
    for group, why in packed.dropped.items():
        print(f"dropped [{group}]: {why}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kit", type=Path, default=ROOT / "gpu-kit", help="where the kit goes (ignored by git)")
    parser.add_argument("--from", dest="source", type=Path, help="take the wheels from this folder, not the registry")
    parser.add_argument("--limit-mib", type=float, help="the kit's size limit (default: 64 MiB less the tracked tree)")
    parser.add_argument("--flores", type=Path, default=FLORES, help="the FLORES devtest folder the full-size builders read")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    flores = args.flores if all((args.flores / n).is_file() for n in FLORES_FILES) else None
    extra = sum((flores / n).stat().st_size for n in FLORES_FILES) if flores else 0
    limit = int(args.limit_mib * MIB) if args.limit_mib else TRAVEL_LIMIT - tree_size()
    found, missing = gather(args.source, args.kit.parent / (args.kit.name + ".work"), locked_versions(ROOT / "locks/stack.txt"))
    packed = pack(found, missing, limit - extra)
    write_kit(packed, args.kit, flores)
    if flores is None:
        print(f"no FLORES text in {args.flores}: the full-size models cannot be built there (--tiny still runs)")
    report(packed, limit, extra)
    print(f"on the GPU machine, bash scripts/gpu_run.sh installs it: pip install --no-index --no-deps --target "
          f"/tmp/gpu-site {args.kit.name}/*.whl, then runs scripts/gpu_kit_check.py and benchmarks/gpu/gpu_run.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
