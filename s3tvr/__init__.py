"""s3tvr: speech-to-speech translation in the speaker's own voice, live.

The public API is small: load a :class:`Config`, build an :class:`Engine` from it (the models,
loaded once) and run a :class:`Session` over a source (as many as you like, at the same time
too: ``engine.session(input=...).run()``); dub a file with a :class:`Dubber`; fetch the model
stack's weights with :func:`download`; or read a latency log with :func:`read_log`.
"""

from s3tvr.config import Config, load_config
from s3tvr.dub.dubber import Dubber, DubOptions, DubResult
from s3tvr.errors import S3tvrError
from s3tvr.latency import summarize
from s3tvr.live.engine import Engine
from s3tvr.live.session import RunResult, Session
from s3tvr.models import download
from s3tvr.records import read_log

__all__ = ["Config", "load_config", "S3tvrError", "Engine", "Session", "RunResult", "Dubber", "DubOptions", "DubResult",
           "download", "read_log", "summarize"]
__version__ = "0.1.0"
