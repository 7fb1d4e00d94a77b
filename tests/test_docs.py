"""The documentation a newcomer reads: the MkDocs site (docs/, mkdocs.yml) builds with --strict (no
broken link or anchor between pages, no page left out of the nav); the README stays short, its links
lead to files (and headings) that exist, and its test command is the one CI runs; no document points
outside the repository (the shared data is a benchmark's --data argument: benchmarks/README.md)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
# The documents a reader follows: the README, the site, the benchmarks' own READMEs.
DOCUMENTS = [README, *sorted(DOCS.rglob("*.md")), *sorted((REPO / "benchmarks").rglob("README.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # [text](target)
# The test command in the README: what .ci/run runs (setup.sh --stack, ruff, the whole suite).
TEST_COMMAND = "./setup.sh --stack && .venv/bin/ruff check . && .venv/bin/python -m pytest -q"


def relative_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)  # code blocks hold no links
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # no scheme: http:, mailto:


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs and mkdocs-material are not installed (the test extra: ./setup.sh)")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's notice about its successor, not a problem of ours
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"),
                           "--site-dir", str(out)], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_the_site_builds_strict_with_every_page_in_the_nav(site):
    pages = {p.relative_to(DOCS).with_suffix("").as_posix() for p in DOCS.rglob("*.md")}
    built = {"index" if p.parent == site else p.parent.relative_to(site).as_posix() for p in site.rglob("index.html")}
    assert pages <= built, pages - built


def test_the_readme_is_short():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= 250, f"README.md has {lines} lines: move the detail to a page of docs/"


def test_the_readme_s_test_command_is_what_ci_runs():
    readme, ci = README.read_text(encoding="utf-8"), (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in readme
    for step in ("./setup.sh --stack", ".venv/bin/ruff check .", ".venv/bin/python -m pytest -q"):
        assert step in ci, step


def test_every_relative_link_of_the_readme_and_the_benchmarks_leads_somewhere(site):
    """Files must exist; a heading named after a docs page (page.md#heading) must be on that page."""
    for doc in [README, *sorted((REPO / "benchmarks").rglob("README.md"))]:
        for target in relative_links(doc):
            file, _, anchor = target.partition("#")
            path = (doc.parent / file).resolve() if file else doc
            assert path.exists(), f"{doc.relative_to(REPO)} links to {target}, which does not exist"
            assert path.is_relative_to(REPO), f"{doc.relative_to(REPO)} links outside the repository: {target}"
            if anchor and path.is_relative_to(DOCS) and path.suffix == ".md":
                page = path.relative_to(DOCS).with_suffix("")
                html = site / ("" if page.name == "index" else page) / "index.html"
                assert f'id="{anchor}"' in html.read_text(encoding="utf-8"), f"{doc.relative_to(REPO)}: no #{anchor} in {file}"


def test_no_document_points_outside_the_repository():
    """The shared data is described in the docs and given to a benchmark as --data; only
    benchmarks/README.md names its default place beside the checkout."""
    for doc in DOCUMENTS:
        if doc == README or doc.is_relative_to(DOCS):
            assert "../shared" not in doc.read_text(encoding="utf-8"), f"{doc.relative_to(REPO)} points at ../shared"
        for target in relative_links(doc):
            path = (doc.parent / target.partition("#")[0]).resolve()
            assert path.is_relative_to(REPO), f"{doc.relative_to(REPO)} links outside the repository: {target}"
