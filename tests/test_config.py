"""The configuration: assembled in one place (preset, into:, --set, flags), printed by s3tvr config
as YAML that loads back, and described from one source (the fields' comments), which also makes
docs/configuration.md."""

import dataclasses
import subprocess
from dataclasses import dataclass
from typing import Annotated, Optional

import pytest
import yaml

from s3tvr.backends import registry
from s3tvr.bounds import Range
from s3tvr.cli import config_docs, main
from s3tvr.cli.config_docs import commented_yaml, descriptions, filled, range_text, summary
from s3tvr.config import _BACKENDS, _SECTIONS, BackendSection, Config, load_config

from conftest import REPO, one_line_error, s3tvr, s3tvr_cmd


def printed(capsys, *args) -> str:
    """What ``s3tvr config ARGS`` prints (in this process: a fresh one per call would cost a second)."""
    capsys.readouterr()
    assert main(["config", *map(str, args)]) == 0
    return capsys.readouterr().out


def effective(*args, capsys) -> dict:
    return yaml.safe_load(printed(capsys, *args))


# -- one source of descriptions ------------------------------------------------------------------------

def schema() -> list[type]:
    """Every dataclass whose fields are configuration keys: the top level, each section, and each
    registered backend's Config."""
    backends = [registry.config_class(b.kind, b.name) for b in registry.BACKENDS]
    return list(dict.fromkeys([Config, BackendSection, *_SECTIONS.values(), *(c for c in backends if c is not None)]))


def test_every_key_of_the_schema_has_a_description():
    missing = [f"{cls.__module__}.{cls.__qualname__}.{name}" for cls in schema() for name, text in descriptions(cls).items()
               if not text.strip()]
    assert not missing, ("write a comment beside (or right above) each of these fields; it is their description in "
                         f"s3tvr config and docs/configuration.md: {', '.join(missing)}")
    assert len(schema()) >= 18  # the sections and every backend's options, not an empty list


@dataclass
class Example:
    plain: int = 1  # on its line
    # Above it, over
    # two lines.
    above: Annotated[float, Range(0, 1, above=True)] = 0.5  # and on its line
    bare: Optional[Annotated[int, Range(32, 10000)]] = None

    # After a blank line: its own.
    items: list[Annotated[float, Range(0, 60)]] = dataclasses.field(default_factory=list)


@dataclass
class Derived(Example):
    plain: int = 2  # redeclared: described here


def test_a_description_is_the_comment_above_a_field_and_the_one_on_its_line():
    assert descriptions(Example) == {"plain": "on its line", "above": "Above it, over two lines. and on its line", "bare": "",
                                     "items": "After a blank line: its own."}
    assert descriptions(Derived)["plain"] == "redeclared: described here" and descriptions(Derived)["items"]
    hints = {name: hint for name, hint in Example.__annotations__.items()}
    assert [range_text(hints[n]) for n in ("plain", "above", "bare", "items")] == ["", "> 0, <= 1", "32..10000", "each 0..60"]
    assert summary("Silence that ends an utterance: fewest splits (bench_vad.py). Measured on 22 sentences.") == \
        "Silence that ends an utterance: fewest splits (bench_vad.py)"
    one = "an installed mode (e.g. spa-eng_US); default the pair's own"
    assert summary(one) == one


def test_the_docs_are_made_from_the_source():
    committed = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == config_docs.markdown(), (f"docs/configuration.md is out of date with the fields' comments: run "
                                                 f"`{config_docs.REGENERATE}` and commit the result")


def test_the_docs_name_every_key_and_every_backend():
    text = config_docs.markdown()
    for cls in schema():
        if cls not in (Config, BackendSection):
            assert all(f"| `{f.name}` |" in text for f in dataclasses.fields(cls)), cls
    assert all(f"| `{f.name}` |" in text or f"## `{f.name}`" in text or f"### `{f.name}`" in text for f in dataclasses.fields(Config))
    assert all(f"`{b.kind}.backend: {b.name}`" in text for b in registry.BACKENDS)
    assert "| `vad.endpoint_ms` |" not in text and "| `endpoint_ms` | int | `500` | 32..10000 |" in text


def test_the_check_mode_says_how_to_regenerate(tmp_path, capsys):
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n")
    assert config_docs.main(["--check", "--output", str(stale)]) == 1
    assert "python -m s3tvr.cli.config_docs" in capsys.readouterr().err
    assert config_docs.main(["--output", str(stale)]) == 0 and config_docs.main(["--check", "--output", str(stale)]) == 0


# -- s3tvr config: the effective configuration, commented, loads back -----------------------------

@pytest.mark.parametrize("preset, src, tgt, purpose", [("offline", "es", "en", "run"), ("offline", "en", "es", "run"),
                                                       ("stack", "en", "es", "run"), ("offline", "es", "en", "dub")])
def test_the_printed_configuration_loads_back_into_the_same_one(capsys, tmp_path, preset, src, tgt, purpose):
    text = printed(capsys, src, "--to", tgt, "--config", preset, "--for", purpose)
    path = tmp_path / "printed.yaml"
    path.write_text(text)
    mode = "dub" if purpose == "dub" else "live"
    original = load_config(preset, purpose=mode, src_lang=src, tgt_lang=tgt)
    back = load_config(path, purpose=mode, src_lang=src, tgt_lang=tgt)
    assert filled(back) == filled(original)
    # and printed again, the same lines (the first says which file it came from)
    again = printed(capsys, src, "--to", tgt, "--config", path, "--for", purpose)
    assert again.splitlines()[1:] == text.splitlines()[1:]


def test_every_key_is_printed_with_its_range_and_description(capsys):
    text = printed(capsys, "es", "--to", "en")
    assert "  endpoint_ms: 500" in text and "# 32..10000 · Silence that ends an utterance" in text
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert all("  # " in line for line in lines), [line for line in lines if "  # " not in line]
    data = yaml.safe_load(text)
    assert set(data) == {f.name for f in dataclasses.fields(Config)}
    for name, cls in _SECTIONS.items():
        assert set(data[name]) == {f.name for f in dataclasses.fields(cls)}
    # the backend sections hold every option of the chosen backend, the preset's values applied
    assert data["mt"]["backend"] == "llm" and set(data["mt"]) - {"backend"} == set(descriptions(registry.config_class("mt", "llm")))
    assert data["asr"]["model"] == "auto" and data["asr"]["beam_size"] == 1 and data["tts"]["voice"] == "bundled:joe"
    # the offline preset into Spanish speaks with Kokoro; for a dub, the same (the preset has no dub: changes)
    assert effective("en", "--to", "es", capsys=capsys)["tts"]["backend"] == "kokoro"


def test_the_spoken_language_may_be_left_to_the_target(capsys):
    """``s3tvr config --to es --set tts.speed=1.1``: the issue's command, English spoken."""
    config = effective("--to", "es", "--set", "tts.speed=1.1", capsys=capsys)
    assert (config["src_lang"], config["tgt_lang"], config["tts"]["speed"]) == ("en", "es", 1.1)
    assert config["tts"]["backend"] == "kokoro"  # the preset's into: es
    assert effective(capsys=capsys)["src_lang"] == "es"  # nothing given: Spanish into English


def test_the_command_line_prints_it_too():
    proc = subprocess.run([*s3tvr_cmd(), "config", "es", "--to", "en", "--set", "mt=apertium"], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    data = yaml.safe_load(proc.stdout)
    assert data["mt"]["backend"] == "apertium" and data["mt"]["timeout_s"] == 10.0
    assert proc.stdout.startswith("# What s3tvr run uses for es -> en")


def test_bad_keys_are_refused_as_a_run_would(tmp_path):
    one_line_error(s3tvr("config", "es", "--set", "vad.nope=1"), "vad.nope", "known are")
    one_line_error(s3tvr("config", "es", "--set", "mt.nope=1"), "mt.nope", "known are")
    one_line_error(s3tvr("config", "es", "--set", "asr.beam_size=0"), "asr.beam_size", "between 1 and 20")


# -- flags are the overrides they stand for --------------------------------------------------------------

def test_a_flag_is_its_key_set_after_every_set(capsys):
    # the same key by a flag and by --set: the flag wins, wherever it is written
    assert effective("es", "--device", "cuda", "--set", "device=cpu", capsys=capsys)["device"] == "cuda"
    both = effective("es", "--set", "simultaneous.mode=simultaneous", "--mode", "sentence", capsys=capsys)
    assert both["simultaneous"]["mode"] == "sentence"
    # each flag means what --set KEY=VALUE means
    for flag, key in [(["--full-duplex"], "audio.full_duplex=true"), (["--fast"], "audio.realtime=false"),
                      (["--dtype", "float32"], "dtype=float32"), (["--mode", "sentence"], "simultaneous.mode=sentence"),
                      (["--output-device", "3"], "audio.output_device='3'")]:
        assert effective("es", *flag, capsys=capsys) == effective("es", "--set", key, capsys=capsys), flag
    # the XTTS flags are tts options of the stack preset, which they select
    by_flags = effective("en", "--xtts-dir", "models/mine", "--seed", "7", "--deepspeed", capsys=capsys)
    by_set = effective("en", "--config", "stack", "--set", "tts.model_dir=models/mine", "--set", "tts.seed=7",
                       "--set", "tts.deepspeed=true", capsys=capsys)
    assert by_flags == by_set and by_flags["tts"]["model_dir"] == "models/mine" and by_flags["asr"]["backend"] == "nemo"


def test_a_flag_value_is_taken_as_given_and_printed_so_that_it_loads_back(capsys, tmp_path):
    name = "USB # 2: {mic}"  # YAML would read a comment, a mapping and a flow mapping in it
    text = printed(capsys, "es", "--input-device", name, "--xtts-dir", "~/x: y", "--config", "stack")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    back = load_config(path, src_lang="es", tgt_lang="en")
    assert back.audio.input_device == name and back.tts.options["model_dir"] == "~/x: y"


def test_the_target_language_picks_the_into_table_however_it_is_given():
    assert load_config("offline", ["tgt_lang=es"], src_lang="en").tts.backend == "kokoro"
    assert load_config("offline", [("tgt_lang", "es")], src_lang="en").tts.backend == "kokoro"
    assert load_config("offline", ["tgt_lang=es"], src_lang="en", tgt_lang="en").tts.backend == "piper"  # the later one


def test_voice_flags_need_the_xtts_voice():
    one_line_error(s3tvr("config", "es", "--seed", "1"), "need the xtts TTS", "--config stack")
    one_line_error(s3tvr("config", "es", "--config", "stack", "--set", "tts=piper", "--seed", "1"), "uses piper")


def test_a_value_yaml_cannot_read_names_the_fix():
    one_line_error(s3tvr("config", "es", "--set", "audio.input_device=USB: [2"), "audio.input_device", "quote it")


def test_filled_configs_compare_what_runs():
    plain = load_config("offline", src_lang="es", tgt_lang="en")
    explicit = load_config("offline", ["asr.beam_size=1", "mt.threads=2"], src_lang="es", tgt_lang="en")
    assert plain != explicit and filled(plain) == filled(explicit)
    llm = registry.config_class("mt", "llm")
    assert filled(plain).mt.options["pace_s"] == 1.5 and set(filled(plain).mt.options) == set(descriptions(llm))
    none = filled(load_config("offline", ["mt=none"], src_lang="es", tgt_lang="en"))
    assert none.mt == BackendSection("none", {})
    assert {kind: getattr(filled(plain), kind).backend for kind in _BACKENDS} == {"asr": "faster-whisper", "mt": "llm", "tts": "piper"}


def test_commented_yaml_of_the_defaults_is_the_default_config(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text(commented_yaml(Config(), ["the defaults"]))
    assert filled(load_config(path)) == filled(Config())
