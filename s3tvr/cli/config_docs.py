"""What every configuration key means, from one source: the comments beside the fields of
:mod:`s3tvr.config`'s sections and of each backend's ``Config`` dataclass.

A field's description is the comment on its line, after any comment lines right above it (read
from the source with :mod:`tokenize`; the ``.py`` files ship in the wheel). From those come

* ``s3tvr config``'s output (:func:`commented_yaml`): the effective configuration as YAML that
  ``--config`` reads back, each key with its range and the first sentence of its description;
* ``docs/configuration.md`` (:func:`markdown`): every section and backend, each key's type,
  default, range and whole description. Regenerate it after changing a field or its comment::

      python -m s3tvr.cli.config_docs           # writes docs/configuration.md
      python -m s3tvr.cli.config_docs --check   # exit 1 if the file differs (tests/test_config.py)
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import math
import re
import sys
import tokenize
import typing
from pathlib import Path
from typing import Any, Iterator, Optional

import yaml

from s3tvr import config as cfg
from s3tvr.backends import registry
from s3tvr.bounds import Range, unoptional
from s3tvr.cli.arguments import CONFIG_FLAGS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"  # s3tvr/cli/ -> the checkout
REGENERATE = "python -m s3tvr.cli.config_docs"


# -- descriptions from the source ------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _comments(path: str) -> tuple[dict[int, str], frozenset[int], ast.Module]:
    """A source file's comments by line, the lines that hold nothing else, and its syntax tree."""
    with tokenize.open(path) as f:
        text = f.read()
    comments, alone = {}, set()
    for tok in tokenize.generate_tokens(iter(text.splitlines(keepends=True)).__next__):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
            if not tok.line[: tok.start[1]].strip():
                alone.add(tok.start[0])
    return comments, frozenset(alone), ast.parse(text)


def _class_node(tree: ast.Module, cls: type) -> Optional[ast.ClassDef]:
    node: Any = tree
    for name in cls.__qualname__.split("."):
        node = next((n for n in getattr(node, "body", []) if isinstance(n, ast.ClassDef) and n.name == name), None)
        if node is None:
            return None
    return node


@functools.lru_cache(maxsize=None)
def descriptions(cls: type) -> dict[str, str]:
    """Field name -> the comment lines right above the field and the comment on its line, joined
    into one line; "" where there is none. A subclass's field is described where it is declared."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a base class first: a subclass that redeclares a field wins
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            path = inspect.getsourcefile(klass)
        except TypeError:
            path = None
        if not path or not Path(path).is_file():
            continue
        comments, alone, tree = _comments(path)
        node = _class_node(tree, klass)
        for stmt in node.body if node else []:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            above, line = [], stmt.lineno - 1
            while line in alone:
                above.insert(0, comments[line])
                line -= 1
            after = [comments[n] for n in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1) if n in comments and n not in alone]
            found[stmt.target.id] = " ".join(above + after)
    return {f.name: found.get(f.name, "") for f in dataclasses.fields(cls)}


def summary(text: str) -> str:
    """The first sentence of a description, without its full stop."""
    first = re.split(r"(?<!e\.g)(?<!i\.e)(?<!etc)\.\s+", text, maxsplit=1)[0]
    return first[:-1] if first.endswith(".") and not first.endswith("..") else first


# -- types, ranges, values ------------------------------------------------------------------------------

def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _bare(hint: Any) -> Any:
    """The type without Optional and Annotated."""
    hint = unoptional(hint)
    return typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint


def type_text(hint: Any) -> str:
    """A type as a reader says it: ``float``, ``int or null``, ``list of float``, ``map of str to int``."""
    optional = unoptional(hint) is not hint
    hint = _bare(hint)
    kind, args = typing.get_origin(hint) or hint, typing.get_args(hint)
    if kind is list:
        text = f"list of {type_text(args[0])}" if args else "list"
    elif kind is dict:
        text = f"map of {type_text(args[0])} to {type_text(args[1])}" if len(args) == 2 else "map"
    else:
        text = getattr(kind, "__name__", "any") if kind is not Any else "any"
    return f"{text} or null" if optional else text


def _range_of(hint: Any) -> Optional[Range]:
    hint = unoptional(hint)
    if typing.get_origin(hint) is typing.Annotated:
        return next((m for m in hint.__metadata__ if isinstance(m, Range)), None)
    return None


def range_text(hint: Any) -> str:
    """A field's declared range, short: ``32..10000``, ``>= 0``, ``> 0``, ``> 0, <= 1``; a list's or
    a map's values: ``each 0..60``; "" without one."""
    bounds = _range_of(hint)
    if bounds is not None:
        return bounds.short()
    inner = _bare(hint)
    args = typing.get_args(inner)
    if typing.get_origin(inner) in (list, dict) and args:
        element = _range_of(args[-1])
        return f"each {element.short()}" if element else ""
    return ""


def yaml_value(value: Any) -> str:
    """A value as YAML writes it in flow style on one line (quoted where YAML would misread it)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, allow_unicode=True)
    return text.removesuffix("\n...\n").strip()  # a plain scalar is a document of its own, ended by "..."


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


# -- the effective configuration ------------------------------------------------------------------------

def filled(config: cfg.Config) -> cfg.Config:
    """``config`` with each backend section holding every option of its backend, defaults filled
    in: two configurations that run the same compare equal. Unknown options and bad values are
    refused as when the run starts; no model is loaded."""
    sections = {}
    for kind in cfg._BACKENDS:
        section = getattr(config, kind)
        options = registry.backend_config(kind, section)
        values = {} if options is None else {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
        sections[kind] = cfg.BackendSection(section.backend, values)
    return dataclasses.replace(config, **sections)


@dataclasses.dataclass(frozen=True)
class _Line:
    depth: int
    key: str
    value: Optional[str]  # None: a section's header
    note: str


def _lines(config: cfg.Config) -> Iterator[_Line]:
    top = descriptions(cfg.Config)
    hints = _hints(cfg.Config)
    for f in dataclasses.fields(cfg.Config):
        value = getattr(config, f.name)
        if isinstance(value, cfg.BackendSection):
            yield _Line(0, f.name, None, summary(top[f.name]))
            yield from _backend_lines(f.name, value)
        elif dataclasses.is_dataclass(value):
            yield _Line(0, f.name, None, summary(top[f.name]))
            yield from _fields(value, 1)
        else:
            yield _Line(0, f.name, yaml_value(value), _note(hints[f.name], top[f.name]))


def _fields(obj: Any, depth: int) -> Iterator[_Line]:
    docs, hints = descriptions(type(obj)), _hints(type(obj))
    for f in dataclasses.fields(obj):
        yield _Line(depth, f.name, yaml_value(getattr(obj, f.name)), _note(hints[f.name], docs[f.name]))


def _backend_lines(kind: str, section: cfg.BackendSection) -> Iterator[_Line]:
    choices = " | ".join(registry.names(kind))
    yield _Line(1, "backend", yaml_value(section.backend), f"{choices} · {summary(descriptions(cfg.BackendSection)['backend'])}")
    options = registry.backend_config(kind, section)
    if options is not None:
        yield from _fields(options, 1)


def _note(hint: Any, description: str) -> str:
    return " · ".join(part for part in (range_text(hint), summary(description)) if part)


def commented_yaml(config: cfg.Config, title: list[str] | tuple[str, ...] = ()) -> str:
    """``config`` as YAML that :func:`s3tvr.config.load_config` reads back into the same
    configuration, each key followed by its range and what it means as a comment."""
    out = [f"# {line}" if line else "#" for line in title]
    lines = list(_lines(config))
    width = min(48, max(2 * line.depth + len(line.key) + 2 + len(line.value) for line in lines if line.value is not None))
    for line in lines:
        text = "  " * line.depth + f"{line.key}:" + (f" {line.value}" if line.value is not None else "")
        out.append(f"{text.ljust(width)}  # {line.note}" if line.note else text)
    return "\n".join(out) + "\n"


# -- docs/configuration.md ------------------------------------------------------------------------

_INTRO = """\
# Configuration

<!-- Generated by `{regenerate}` from the comments beside the fields in s3tvr/config.py and the
backends' Config dataclasses: edit those, then run it again (tests/test_config.py compares). -->

A configuration is assembled in one place (`s3tvr.config.load_config`), each step over the one before:

1. **the preset**: `--config NAME` (a preset of `s3tvr/configs/`: `offline`, the default; `stack`, the
   default with `--xtts-dir` or `--xtts-config`; `fake`) or `--config FILE.yaml`;
2. **its `into:` table** for the target language (`--to`), and for `s3tvr dub` that language's `dub:` changes;
3. **`--set KEY=VALUE`**, in the order given (VALUE is read as YAML: `--set mt.num_beams=4`,
   `--set simultaneous.mode=sentence`, `--set asr.model=small`);
4. **the flags**: each flag below is a shorthand for one key, the same as `--set KEY=VALUE` placed after
   every `--set`, so **a flag wins over a `--set` of the same key** (`--device cuda --set device=cpu`
   runs on cuda). A flag's value is taken as given, never read as YAML, so paths and device names keep
   their characters. The language arguments are flags of this kind too (`src_lang`, `tgt_lang`).

| flag | key |
|---|---|
{flags}
| `run`'s `LANG`, `serve`'s and `dub`'s `--from` | `src_lang` |
| `--to` | `tgt_lang` |

`s3tvr config LANG [--to LANG] [--for run|serve|dub] [--config …] [--set …] [flags]` prints the result as
YAML, every key with its range and its description as a comment; `--config` reads the printed file back
into the same configuration. `configs/` holds commented examples to copy (a laptop offline, a GPU with the
model stack, a call, a dubbing job, a serve deployment).

A backend section (`asr`, `mt`, `tts`) names its backend (`mt: llm` is short for `mt: {{backend: llm}}`);
its other keys are that backend's options, listed per backend below. In an `into:` or `dub:` table, a
section that names another backend starts afresh: the first backend's options mean nothing to it.
Numbers outside their range are refused with the range in the message, wherever they come from.
"""


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else ""


def _table(cls: type, obj: Any = None) -> list[str]:
    docs, hints = descriptions(cls), _hints(cls)
    rows = ["| key | type | default | range | description |", "|---|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        default = _default(f) if obj is None else getattr(obj, f.name)
        rows.append(f"| `{f.name}` | {type_text(hints[f.name])} | `{_cell(yaml_value(default))}` | {_cell(range_text(hints[f.name]))} "
                    f"| {_cell(docs[f.name])} |")
    return rows


def markdown() -> str:
    """docs/configuration.md, made from the fields and their comments."""
    flags = "\n".join(f"| `{flag.flag}` | `{flag.key}`" + (f" = `{yaml_value(flag.switch)}`" if flag.switch is not None else "") + " |"
                      for flag in CONFIG_FLAGS)
    out = [_INTRO.format(regenerate=REGENERATE, flags=flags)]
    top = descriptions(cfg.Config)
    hints = _hints(cfg.Config)
    defaults = cfg.Config()
    out += ["## Top-level keys", ""]
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for f in dataclasses.fields(cfg.Config):
        if not dataclasses.is_dataclass(getattr(defaults, f.name)):
            rows.append(f"| `{f.name}` | {type_text(hints[f.name])} | `{yaml_value(getattr(defaults, f.name))}` | {_cell(top[f.name])} |")
    out += rows + [""]
    for f in dataclasses.fields(cfg.Config):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, cfg.BackendSection):
            out += [f"## `{f.name}`", "", _sentence(top[f.name]), "", *_table(type(value), value), ""]
    out += ["## Backends", "",
            "Each backend's options (`s3tvr run --help` lists them too). The default backends: "
            + ", ".join(f"`{kind}: {getattr(defaults, kind).backend}`" for kind in cfg._BACKENDS)
            + " (the presets choose others).", ""]
    for kind in cfg._BACKENDS:
        out += [f"### `{kind}`", "", _sentence(top[kind]), ""]
        for b in registry.BACKENDS:
            if b.kind != kind:
                continue
            extra = f" (`pip install 's3tvr[{b.extra}]'`)" if b.extra else ""
            out += [f"#### `{kind}.backend: {b.name}`", "", _sentence(f"{b.summary}{extra}"), ""]
            config_cls = registry.config_class(kind, b.name)
            out += (_table(config_cls) if config_cls is not None else ["No options."]) + [""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s3tvr.cli.config_docs", description="Write docs/configuration.md from the source.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what would be written")
    parser.add_argument("--output", type=Path, default=DOCS, help=f"default: {DOCS}")
    args = parser.parse_args(argv)
    text = markdown()
    if args.check:
        same = args.output.is_file() and args.output.read_text(encoding="utf-8") == text
        print(f"{args.output}: {'up to date' if same else f'out of date: run {REGENERATE}'}", file=sys.stderr)
        return 0 if same else 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
