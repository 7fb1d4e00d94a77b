"""configs/: the commented example configurations a user copies. Each builds, for every target its
into: table names, live and for dubbing, and its backends' options make their Config through the
registry (no model is loaded); each says what it is for."""

import pytest

from s3tvr.backends import registry
from s3tvr.cli.config_docs import filled
from s3tvr.config import _BACKENDS, load_config

from conftest import REPO

CONFIGS = REPO / "configs"
EXAMPLES = ("laptop-offline", "gpu-stack", "call", "dubbing", "serve")
TARGETS = ("en", "es", "fr", "de", "it", "pt", "ru")


def test_the_folder_holds_the_examples_and_nothing_untested():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_an_example_builds_with_its_backends_options_for_every_target(name):
    path = CONFIGS / f"{name}.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ") and f"configs/{name}.yaml" in text  # it says what it is for and how to use it
    for tgt in TARGETS:
        src = "es" if tgt == "en" else "en"
        for purpose in ("live", "dub"):
            config = load_config(path, purpose=purpose, src_lang=src, tgt_lang=tgt)
            for kind in _BACKENDS:  # unknown options and values out of range refused here, as at a run's start
                section = getattr(config, kind)
                options = registry.backend_config(kind, section)
                assert options is not None or section.backend == "none"
            filled(config)


@pytest.mark.parametrize("tgt", TARGETS)
@pytest.mark.parametrize("purpose", ["live", "dub"])
def test_the_laptop_example_is_the_offline_preset_written_out(tgt, purpose):
    src = "es" if tgt == "en" else "en"
    example = load_config(CONFIGS / "laptop-offline.yaml", purpose=purpose, src_lang=src, tgt_lang=tgt)
    assert filled(example) == filled(load_config("offline", purpose=purpose, src_lang=src, tgt_lang=tgt)), \
        "configs/laptop-offline.yaml no longer matches s3tvr/configs/offline.yaml: change them together"


def test_each_example_sets_what_it_is_for():
    def load(name, tgt="en", purpose="live"):
        return load_config(CONFIGS / f"{name}.yaml", purpose=purpose, src_lang="es" if tgt == "en" else "en", tgt_lang=tgt)

    gpu = load("gpu-stack", "es")
    assert (gpu.device, gpu.asr.backend, gpu.mt.backend, gpu.tts.backend) == ("cuda", "nemo", "nllb", "xtts")
    assert gpu.mt.options["local_files_only"] is True
    call = load("call")
    assert call.audio.full_duplex and call.vad.endpoint_ms < load_config("offline").vad.endpoint_ms
    assert call.mt.backend == "llm" and call.mt.options["late_s"] < 4.0 and load("call", "es").tts.backend == "kokoro"
    # dubbing into English: Kokoro's styles give each speaker a voice; live, Piper's one English voice
    assert load("dubbing", purpose="dub").tts.backend == "kokoro" and load("dubbing").tts.backend == "piper"
    assert load("dubbing", purpose="dub").asr.options["beam_size"] == 5
    served = load("serve", "es")
    assert served.tts.backend == "xtts" and served.tts.options["voice_cache"] and served.device == "cuda"
