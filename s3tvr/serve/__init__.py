"""``s3tvr serve`` and ``s3tvr client``: live translation over a WebSocket (docs/serve.md, the WebSocket protocol).

The server (:mod:`s3tvr.serve.server`) shares one engine's models between its clients, each a
session of its own; the client (:mod:`s3tvr.serve.client`) streams a file or the microphone to
it and plays or writes the translation. This module holds only the server's options, so that the
command line reads their ranges without importing the web stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional
from urllib.parse import urlsplit

from s3tvr import bounds
from s3tvr.bounds import Range
from s3tvr.errors import InputError
from s3tvr.text.glossary import NO_GLOSSARY, Glossary

ANY_ORIGIN = "*"
# The Origin of a page that has none of its own: a file:// page, a sandboxed iframe, a data: URL.
# Any site can make one (a sandboxed iframe of its own page), so allowing it is nearly allowing "*".
NULL_ORIGIN = "null"


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"  # loopback: only this machine; anything else should have a token
    port: Annotated[int, Range(0, 65535)] = 8000  # 0: any free port
    token: Optional[str] = None  # clients must give it (?token= or Authorization: Bearer); never empty
    max_sessions: Annotated[int, Range(1, 1000)] = 4  # at once; more are refused (1013) until one ends
    log_dir: Optional[str] = None  # one latency log per session: DIR/SESSION.jsonl
    max_ahead_s: Annotated[float, Range(1, 600)] = 10.0  # a client's burst ahead of real time; more is refused (1008)
    max_unread_s: Annotated[float, Range(1, 3600)] = 30.0  # translated audio a client leaves unread before it is dropped (1008)
    voice: tuple[str, ...] = ()  # recordings every session's voice-cloning TTS speaks with (none: learned per session)
    # Web pages of other sites whose WebSockets are served (the server's own pages always are): exact
    # origins such as https://app.example:8443, "null": pages with no origin (file://, sandboxed
    # iframes, which any site can make), or "*": any page on the web (dangerous).
    allow_origins: tuple[str, ...] = ()
    # Clients may speak in voices other owners saved (by speaker name): used as saved, never extended.
    share_voices: bool = False
    # --glossary: every session's, unless it gives its own (?glossary=, docs/glossary.md)
    glossary: Glossary = NO_GLOSSARY

    def __post_init__(self) -> None:
        bounds.check(self)
        if self.token is not None:
            problem = token_problem(self.token)
            if problem:
                raise InputError(f"--token {problem}")
        self.allow_origins = tuple(self.allow_origins)
        for origin in self.allow_origins:
            problem = origin_problem(origin)
            if problem:
                raise InputError(f"--allow-origin {origin}: {problem}")


DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin_key(origin: str) -> Optional[tuple[str, str, int]]:
    """An origin (``scheme://host[:port]``, as a browser sends it) as (scheme, host, port), the
    default port filled in and the host in lower case, so that equal origins compare equal; None
    if it is no http(s) origin (``null``, a path, a bad port)."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment \
            or parts.username is not None:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def origin_problem(origin: str) -> str:
    """What makes ``origin`` no value for --allow-origin ("" if nothing)."""
    if origin in (ANY_ORIGIN, NULL_ORIGIN) or origin_key(origin) is not None:
        return ""
    return ("give a web page's origin, scheme://host[:port] with no path (e.g. https://app.example:8443), "
            "null for pages with none (file://, sandboxed), or * for any")


def token_problem(token: str) -> str:
    """What makes ``token`` no token ("" if nothing): an empty one would serve everyone without a
    word, and one with spaces around it never matches what an Authorization header carries."""
    if not token.strip():
        return "is empty: set it to a secret clients must present (e.g. \"$(openssl rand -hex 16)\"), or leave it out to serve without one"
    if token != token.strip():
        return "begins or ends with whitespace, which an Authorization header cannot carry: give it without"
    return ""
