"""``s3tvr serve`` and ``s3tvr client``: live translation over a WebSocket (the README's WebSocket protocol).

The server (:mod:`s3tvr.serve.server`) shares one engine's models between its clients, each a
session of its own; the client (:mod:`s3tvr.serve.client`) streams a file or the microphone to
it and plays or writes the translation. This module holds only the server's options, so that the
command line reads their ranges without importing the web stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional

from s3tvr import bounds
from s3tvr.bounds import Range


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"  # loopback: only this machine; anything else should have a token
    port: Annotated[int, Range(0, 65535)] = 8000  # 0: any free port
    token: Optional[str] = None  # clients must give it (?token= or Authorization: Bearer)
    max_sessions: Annotated[int, Range(1, 1000)] = 4  # at once; more are refused (1013) until one ends
    log_dir: Optional[str] = None  # one latency log per session: DIR/SESSION.jsonl
    max_ahead_s: Annotated[float, Range(1, 600)] = 10.0  # a client's burst ahead of real time; more is refused (1008)
    max_unread_s: Annotated[float, Range(1, 3600)] = 30.0  # translated audio a client leaves unread before it is dropped (1008)
    voice: tuple[str, ...] = ()  # recordings every session's voice-cloning TTS speaks with (none: learned per session)

    def __post_init__(self) -> None:
        bounds.check(self)
