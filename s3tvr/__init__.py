"""s3tvr: speech-to-speech translation in the speaker's own voice, live.

The public API is small: load a :class:`Config`, build an :class:`Engine` from it (the models,
loaded once) and run a :class:`Session` over a source (as many as you like, at the same time
too: ``engine.session(input=...).run()``); dub a file with a :class:`Dubber`; fetch the model
stack's weights with :func:`download`; or read a latency log with :func:`read_log`.

Each name is imported from its module when first used (PEP 562), so that ``import s3tvr`` (and
``s3tvr --help``) does not load the engine, the dubber and their libraries.

The package, from the top down: ``cli/`` (the ``s3tvr`` command); ``serve/``, ``dub/``, ``eval/``
and ``finetune/`` (one command's work each); ``live/`` (the live path, source to listener);
``backends/`` (the models); ``audio/``, ``latency/`` (the latency log and its reports) and
``weights/`` (where the models' weights come from). Beside them, the modules every part shares:
``config`` (sections, presets, ``load_config``) and ``bounds`` (the options' ranges), ``errors``,
``files`` (written whole or not at all), ``edited_json`` (user-edited JSON read as hostile input),
``languages``, ``text`` (sentence splitting) and ``progress``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Each public name -> the module that defines it (moving a name is one line here).
_WHERE = {
    "Config": "s3tvr.config",
    "load_config": "s3tvr.config",
    "S3tvrError": "s3tvr.errors",
    "Engine": "s3tvr.live.engine",
    "Session": "s3tvr.live.session",
    "RunResult": "s3tvr.live.session",
    "Dubber": "s3tvr.dub.dubber",
    "DubOptions": "s3tvr.dub.dubber",
    "DubResult": "s3tvr.dub.dubber",
    "download": "s3tvr.weights.downloaded",
    "read_log": "s3tvr.latency.record",
    "summarize": "s3tvr.latency.report",
}

__all__ = ["Config", "load_config", "S3tvrError", "Engine", "Session", "RunResult", "Dubber", "DubOptions", "DubResult",
           "download", "read_log", "summarize"]
__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports them
    from s3tvr.config import Config, load_config
    from s3tvr.dub.dubber import Dubber, DubOptions, DubResult
    from s3tvr.errors import S3tvrError
    from s3tvr.latency.record import read_log
    from s3tvr.latency.report import summarize
    from s3tvr.live.engine import Engine
    from s3tvr.live.session import RunResult, Session
    from s3tvr.weights.downloaded import download


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 's3tvr' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # imported once: later lookups find it without calling here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
