"""setup.sh on a machine without room for the install: one line before anything is installed."""

import os
import shutil
import subprocess
import sys

from conftest import REPO


def test_setup_on_a_full_disk_says_so_before_installing(tmp_path):
    shutil.copy(REPO / "setup.sh", tmp_path / "setup.sh")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    # df as a 93 %-full disk with 2 GB left reports it (POSIX format, 1 KiB blocks).
    (fake_bin / "df").write_text("#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
                                 "echo '/dev/vda 264241152 245366784 2097152 93% /work'\n")
    (fake_bin / "df").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    for args, need in ((["--stack"], 14), ([], 5)):
        proc = subprocess.run(["bash", str(tmp_path / "setup.sh"), *args], capture_output=True, text=True,
                              env=env, timeout=60)
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr.splitlines() == [f"setup.sh: 2 GB free on /work, the install needs about {need} GB: "
                                            "free some space and run it again"]
        assert not (tmp_path / ".venv").exists()  # nothing half-built


def test_the_package_metadata_builds_without_deprecation_warnings(tmp_path):
    # setuptools deprecated project.license as a TOML table (builds fail from 2027-02-18): it warned
    # three times in every install setup.sh ran. The licence is an SPDX expression, its text LICENSE.
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "s3tvr", tmp_path / "s3tvr", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "meta").mkdir()
    build = "from setuptools import build_meta\nprint(build_meta.prepare_metadata_for_build_wheel('meta'))"
    proc = subprocess.run([sys.executable, "-c", build], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "deprecat" not in (proc.stdout + proc.stderr).lower(), proc.stderr
    metadata = (tmp_path / "meta" / proc.stdout.split()[-1] / "METADATA").read_text()
    assert "License-Expression: MIT" in metadata.splitlines() and "License-File: LICENSE" in metadata.splitlines()
