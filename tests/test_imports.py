"""s3tvr's modules import one another without cycles (scripts/import_cycles.py), imports inside
functions counted: a module that must import another late to load at all is tangled with it."""

import subprocess
import sys

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "import_cycles.py"
# Being untangled on another branch (issue 23): latency/report.py imports field_metrics' figures, and
# field_metrics imports report's percentile back (inside a function).
ELSEWHERE = "s3tvr.latency.field_metrics <-> s3tvr.latency.report"


def cycles(root) -> tuple[int, list[str]]:
    proc = subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, proc.stdout.splitlines()


def test_no_import_cycles():
    code, found = cycles(REPO)
    if found == [ELSEWHERE]:
        pytest.xfail(f"{ELSEWHERE}: fixed on another branch of issue 23; no other cycle is left")
    assert (code, found) == (0, [])


def test_the_script_finds_a_cycle_through_a_function_and_ignores_type_checking(tmp_path):
    package = tmp_path / "s3tvr"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from s3tvr.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from s3tvr import c\n")
    (package / "c.py").write_text("import s3tvr.a\n")
    (package / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from s3tvr import e\n")
    (package / "e.py").write_text("from s3tvr.d import x\n")
    assert cycles(tmp_path) == (1, ["s3tvr.a <-> s3tvr.c <-> s3tvr.sub.b"])


def test_the_package_top_holds_few_modules():
    # Issue 35: a newcomer reads s3tvr/ by its packages (cli, live, backends, dub, serve, eval,
    # finetune, audio, latency, weights); the modules left beside them are the few every part shares.
    top = sorted(p.stem for p in (REPO / "s3tvr").glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert len(top) <= 8, f"{len(top)} modules directly in s3tvr/ ({', '.join(top)}): put the new one in the package it belongs to"
