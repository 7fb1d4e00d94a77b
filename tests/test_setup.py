"""setup.sh on a machine without room for the install: one line before anything is installed."""

import os
import shutil
import subprocess

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
    for args, need in ((["--stack"], 12), ([], 3)):
        proc = subprocess.run(["bash", str(tmp_path / "setup.sh"), *args], capture_output=True, text=True,
                              env=env, timeout=60)
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr.splitlines() == [f"setup.sh: 2 GB free on /work, the install needs about {need} GB: "
                                            "free some space and run it again"]
        assert not (tmp_path / ".venv").exists()  # nothing half-built
