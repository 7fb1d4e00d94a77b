"""The locked install: setup.sh installs exactly locks/*.txt and says so when a venv differs from it."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

CHECK = REPO / "scripts" / "lock_check.py"


def read_lock(path: Path) -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("lock_check", CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.read_lock(path)


def this_venvs_lock() -> Path:
    # setup.sh marks a venv that has the stack; plain ./setup.sh installs the offline lock.
    return REPO / "locks" / ("stack.txt" if (Path(sys.prefix) / ".s3tvr-stack").exists() else "offline.txt")


def test_setup_installed_exactly_the_lock():
    """The venv the tests run in is the one setup.sh made (CI: on a clean clone): every locked package
    at its locked version, nothing else."""
    proc = subprocess.run([sys.executable, str(CHECK), str(this_venvs_lock()), str(REPO / "locks/no-deps.txt")],
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, ""), f"this venv differs from {this_venvs_lock().name}: {proc.stdout}"


def fake_site(site: Path, packages: dict[str, str]) -> None:
    """A site-packages folder with only the metadata importlib reads of each installed package."""
    for name, version in packages.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def fake_checkout(tmp_path: Path, site: Path) -> Path:
    """setup.sh, the locks and the check in a folder of their own, over a venv whose pip installs nothing
    and whose packages are those of ``site``: what setup.sh says after its installs, without installing."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "setup.sh", repo)
    shutil.copytree(REPO / "locks", repo / "locks")
    shutil.copy(CHECK, repo / "scripts")
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (repo / ".venv" / ".s3tvr-stack").touch()
    (venv_bin / "python").write_text(f'#!/bin/sh\n[ "$1" = -m ] && [ "$2" = pip ] && exit 0\n'
                                     f'exec {sys.executable} "$@" --site {site}\n')
    (venv_bin / "python").chmod(0o755)
    return repo


def run_setup(repo: Path) -> subprocess.CompletedProcess:
    # As root it also checks its Debian packages: the real setup.sh has installed them before the tests.
    return subprocess.run(["bash", str(repo / "setup.sh"), "--stack"], capture_output=True, text=True, timeout=60)


def test_setup_says_when_the_venv_differs_from_the_lock(tmp_path):
    stack = read_lock(REPO / "locks/stack.txt")
    locked = {**stack, **read_lock(REPO / "locks/no-deps.txt")}
    exact, changed = tmp_path / "exact", tmp_path / "changed"
    fake_site(exact, locked)
    fake_site(changed, {**locked, "transformers": "5.23.0", "leftover-pkg": "1.0"})

    proc = run_setup(fake_checkout(tmp_path / "a", exact))
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.strip() == f"setup.sh: .venv holds exactly locks/stack.txt ({len(stack)} packages, the set CI tested)"

    proc = run_setup(fake_checkout(tmp_path / "b", changed))
    assert proc.returncode == 0  # a warning: the venv works, it is just not the tested set
    assert proc.stderr.splitlines() == [
        f"setup.sh: .venv differs from locks/stack.txt: transformers 5.23.0 (locked {locked['transformers']}); "
        "leftover-pkg 1.0 not in the lock; rm -rf .venv && ./setup.sh --stack installs exactly the tested set"]


def test_lock_check_says_what_moved_between_two_locks(tmp_path):
    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    old.write_text("# via uv\nnumpy==2.4.6\n    # via s3tvr\ntransformers==5.23.0\ngone==1.0 ; python_version < '3.12'\n")
    new.write_text("numpy==2.4.6\nTransformers==5.24.0\nnew_pkg==0.1\n")
    proc = subprocess.run([sys.executable, str(CHECK), "--diff", str(old), str(new)], capture_output=True, text=True, timeout=60)
    assert proc.stdout.splitlines() == ["transformers 5.23.0 -> 5.24.0", "new-pkg 0.1 (new)", "gone 1.0 (gone)"]
