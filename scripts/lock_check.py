"""Does a virtualenv hold exactly what the locks pin? And what moved between two locks?

    python scripts/lock_check.py locks/stack.txt locks/no-deps.txt   # this Python's packages against the locks
    python scripts/lock_check.py --site DIR LOCK...                   # the packages installed in DIR instead
    python scripts/lock_check.py --diff OLD NEW                       # what a re-resolved lock changes

The check prints nothing and exits 0 when every locked package is installed at its locked version
and nothing else is installed; otherwise it prints the differences on one line and exits 1
(setup.sh turns that into its warning). Standard library only: it runs in any venv, even a broken one.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from pathlib import Path

# Installed in every venv setup.sh makes, never locked: s3tvr itself (editable, from this checkout).
UNLOCKED = {"s3tvr"}
SHOWN = 6  # differences named in the one line; the rest are counted


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503: Foo_Bar and foo-bar are one package


def read_lock(path: Path) -> dict[str, str]:
    """The ``name==version`` pins of a requirements-format lock (uv pip compile's output)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()  # comments, environment markers
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[normalise(name.split("[", 1)[0])] = version.strip()
    return pins


def installed(site: Path | None = None) -> dict[str, str]:
    dists = importlib.metadata.distributions(path=[str(site)]) if site else importlib.metadata.distributions()
    return {normalise(d.metadata["Name"]): d.version for d in dists if d.metadata["Name"]}


def differences(locked: dict[str, str], have: dict[str, str]) -> list[str]:
    found = []
    for name, version in sorted(locked.items()):
        if name not in have:
            found.append(f"{name} missing (locked {version})")
        elif have[name] != version:
            found.append(f"{name} {have[name]} (locked {version})")
    found += [f"{name} {have[name]} not in the lock" for name in sorted(have.keys() - locked.keys() - UNLOCKED)]
    return found


def moved(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """What a new lock changes against an old one, a line each."""
    lines = [f"{name} {old[name]} -> {new[name]}" for name in sorted(old.keys() & new.keys()) if old[name] != new[name]]
    lines += [f"{name} {new[name]} (new)" for name in sorted(new.keys() - old.keys())]
    lines += [f"{name} {old[name]} (gone)" for name in sorted(old.keys() - new.keys())]
    return lines


def one_line(found: list[str]) -> str:
    more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    return "; ".join(found[:SHOWN]) + more


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("locks", nargs="+", type=Path)
    parser.add_argument("--site", type=Path, help="a site-packages folder (default: this Python's)")
    parser.add_argument("--diff", action="store_true", help="print what moved from the first lock to the second")
    args = parser.parse_args(argv)
    if args.diff:
        if len(args.locks) != 2:
            parser.error("--diff takes two locks: OLD NEW")
        print("\n".join(moved(read_lock(args.locks[0]), read_lock(args.locks[1]))) or "nothing moved")
        return 0
    locked: dict[str, str] = {}
    for lock in args.locks:
        locked.update(read_lock(lock))
    found = differences(locked, installed(args.site))
    if found:
        print(one_line(found))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
