"""``s3tvr serve``: one engine, loaded once, translating for every WebSocket client at the same
time; each connection at ``/ws`` is one session (docs/serve.md, the WebSocket protocol;
:mod:`s3tvr.serve.connection`), ``/`` the web page, ``/captions`` the caption overlay
(:mod:`s3tvr.serve.captions`), ``/healthz``, ``/readyz`` and ``/metrics`` for whoever runs it.
Here: who is let in (origin, token, query, room), the app, and uvicorn around it.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import hmac
import ipaddress
import logging
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from starlette.applications import Starlette
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from s3tvr import files
from s3tvr.errors import InputError
from s3tvr.latency.record import UtteranceRecord
from s3tvr.live.engine import Engine
from s3tvr.serve import ANY_ORIGIN, NULL_ORIGIN, ServeOptions, origin_key, origin_problem
from s3tvr.serve.captions import CaptionFeed, follow_query, serve_watcher
from s3tvr.serve.connection import MAX_FRAME, Connection, send_refusal
from s3tvr.serve.metrics import CONTENT_TYPE, ServeMetrics
from s3tvr.serve.transport import Refusal

if TYPE_CHECKING:
    from s3tvr.live.session import Session

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
LANG = re.compile(r"[a-z]{2,3}")  # ISO 639-1 (and -3): anything else never reaches the engine
SPEAKER = re.compile(r"[\w.-]{1,64}")
SNDBUF = 128 * 1024  # bytes the kernel holds for a client (see bind)


async def web_page(request: Any) -> Response:
    """The page at ``/``: served by a server and by the replicas' front alike."""
    page = STATIC / "index.html"
    if not page.is_file():
        return PlainTextResponse("the web page is not installed; the WebSocket is at /ws", status_code=404)
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


async def caption_page(request: Any) -> Response:
    """The caption overlay at ``/captions`` (its settings in the URL: docs/serve.md, "Captions")."""
    page = STATIC / "captions.html"
    if not page.is_file():
        return PlainTextResponse("the caption overlay is not installed; its WebSocket is at /captions/ws", status_code=404)
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


async def caption_overlay(ws: WebSocket, feed: CaptionFeed, gate: Gate, refused: Callable[[str], None] = lambda reason: None) -> None:
    """A caption overlay at ``/captions/ws``, on a server and on the replicas' front alike: let in as
    a session is (origin, then token), then fed its lines; ``refused`` counts a refusal by its check."""
    await ws.accept()
    reason = "origin"
    try:
        gate.check_origin(ws)  # a page of another site must not read what is said in the sessions
        reason = "token"
        gate.check_token(ws)
        reason = "query"
        wants = follow_query(ws)
        reason = "busy"
        watcher = feed.watch(wants, asyncio.get_running_loop())
    except Refusal as refusal:
        refused(reason)
        log.warning("a caption overlay: closed %d: %s", refusal.code, refusal.reason)
        await send_refusal(ws, refusal)
        return
    await serve_watcher(feed, ws, watcher)


def operator_routes(unready: Callable[[], str], metrics: ServeMetrics) -> list[Route]:
    """``/healthz``, ``/readyz`` (``unready``: why a new session would not be served, "" if it
    would) and ``/metrics``, on a server and on the replicas' front alike. For whoever runs it (a
    load balancer, Kubernetes' probes, Prometheus): no token asked, as their callers have none;
    they say counts only, never a session's text or audio."""
    async def healthz(request: Any) -> Response:
        return PlainTextResponse("ok")  # the process answers: all a liveness probe asks

    async def readyz(request: Any) -> Response:
        why = unready()
        return PlainTextResponse(why or "ready", status_code=503 if why else 200)

    async def scrape(request: Any) -> Response:
        return Response(metrics.text(), media_type=CONTENT_TYPE)

    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", scrape)]


class Gate:
    """Who may open a session: the page it comes from (``Origin``), then the token. The server
    and the replicas' front (:mod:`s3tvr.serve.replicas`) ask the same questions."""

    def __init__(self, options: ServeOptions):
        self.token = options.token or None
        self.allow_any_origin = ANY_ORIGIN in options.allow_origins
        self.allow_null_origin = NULL_ORIGIN in options.allow_origins
        self.allow_origins = {origin_key(o) for o in options.allow_origins if o not in (ANY_ORIGIN, NULL_ORIGIN)}

    def check_origin(self, ws: WebSocket) -> None:
        """A browser names the page that opens a WebSocket in ``Origin``, and lets any page open
        one to any address, this machine's included: without this check any site the user visits
        could drive the server (and speak in a saved voice). Clients that are no browser send no
        Origin and are not asked. Behind a proxy, ``Host`` is the one it forwards."""
        origin = ws.headers.get("origin")
        if origin is None or self.allow_any_origin:
            return
        if origin == NULL_ORIGIN:
            if self.allow_null_origin:
                return
            raise Refusal(1008, "pages with no origin (Origin: null: file://, sandboxed iframes) may not use this server; "
                                "to allow them: --allow-origin null")
        key = origin_key(origin)
        if key is not None and (key in self.allow_origins or self.same_origin(key, ws)):
            return
        # The hint names a value --allow-origin takes, whole: the reason fits a close frame (123 bytes).
        nameable = not origin_problem(origin)
        hint = f"pages of other sites may not use this server; to allow these: --allow-origin {origin}"
        if nameable and len(hint.encode()) <= 123:
            raise Refusal(1008, hint)
        shown = origin if len(origin) <= 40 else origin[:40] + "..."
        if nameable:
            raise Refusal(1008, f"pages of {shown} may not use this server; to allow them: --allow-origin THEIR-ORIGIN")
        raise Refusal(1008, f"pages of {shown} may not use this server; only --allow-origin '*' would let them in")

    def same_origin(self, key: tuple[str, str, int], ws: WebSocket) -> bool:
        """Is the page one of this server's own, at the address the client asked for? A page of any
        site can point its own name at this machine once loaded (DNS rebinding): the names match,
        yet the page is that site's. So without a token, only an address or localhost, which no
        site can take over, is this server's own; a name must be listed with --allow-origin."""
        own = request_origin(ws)
        return key == own and (self.token is not None or is_address(key[1]))

    def check_token(self, ws: WebSocket) -> None:
        if self.token is None:
            return
        given = ws.query_params.get("token")
        auth = ws.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not given:
            raise Refusal(1008, "this server needs a token: add token=TOKEN to the URL (or send Authorization: Bearer TOKEN)")
        if not hmac.compare_digest(given.encode(), self.token.encode()):  # constant time: nothing to learn from timing
            raise Refusal(1008, "wrong token")


class Server:
    """The sessions of one engine (loaded already: :func:`serve` sees to that), as an ASGI app.
    Its connections see it as a :class:`~s3tvr.serve.connection.Host`: they ask to be admitted,
    for a session, and give their place back; only the server changes its counts."""

    def __init__(self, engine: Engine, options: Optional[ServeOptions] = None):
        self.engine = engine
        self.options = options = options or ServeOptions()
        self.max_sessions = options.max_sessions
        self.log_dir = Path(options.log_dir) if options.log_dir else None
        self.max_ahead_s, self.max_unread_s = options.max_ahead_s, options.max_unread_s
        self.output_rate = engine.config.audio.output_sample_rate  # of the translation sent to clients
        self.talk = engine.languages  # a conversation's two languages (serve --talk), () otherwise
        self.active = 0  # sessions whose thread runs (changed on the event loop only)
        self.served = 0  # sessions opened since start
        self.closes: collections.Counter = collections.Counter()  # refusals and closes by code, since start
        self.gate = Gate(options)
        self.metrics = ServeMetrics(active=lambda: self.active)
        self.captions = CaptionFeed()  # each session's committed lines, for the caption overlay (/captions)
        # Whom its clients' voices (speaker=NAME) belong to: they are told apart by token only.
        self.voice_owner = token_owner(options.token) if options.token else ANONYMOUS

    def app(self) -> Starlette:
        app = Starlette(routes=[
            Route("/", web_page),
            WebSocketRoute("/ws", self._websocket),
            Route("/captions", caption_page),
            WebSocketRoute("/captions/ws", self._captions),
            *operator_routes(self.unready, self.metrics),
            Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
        ])
        app.state.server = self
        return app

    def unready(self) -> str:
        """Why a new session would not be served now ("" if it would): /readyz's answer."""
        if not self.engine.loaded:
            return "loading"
        if self.active >= self.max_sessions:
            return f"full: {self.active} of {self.max_sessions} sessions"
        return ""

    async def _websocket(self, ws: WebSocket) -> None:
        await ws.accept()  # first: a browser sees a refusal's reason only on an open connection
        await Connection(self, ws).run()

    async def _captions(self, ws: WebSocket) -> None:
        await caption_overlay(ws, self.captions, self.gate, refused=self.metrics.refused)

    # -- what a connection asks of it (connection.Host) ------------------------------------

    def admit(self, ws: WebSocket) -> tuple[str, str, str]:
        """The session's (from, to, speaker), its place among --max-sessions taken (give it back
        with :meth:`release`); or a Refusal saying why not, counted by the check that refused it."""
        reason = "origin"
        try:
            self.gate.check_origin(ws)  # first: a page of another site learns nothing more, not even that a token is asked
            reason = "token"
            self.gate.check_token(ws)
            reason = "query"
            query = self.check_query(ws)
            reason = "busy"
            self.check_room()
        except Refusal:
            self.metrics.refused(reason)
            raise
        self.active += 1  # no await since the check: no other connection slips in between
        return query

    def session(self, id: str, **kwargs: Any) -> Session:
        """An admitted connection's session (``kwargs``: Session's), with the server's log folder,
        voice and glossary (unless it brings its own); counted as served once it is made."""
        log_path = self.log_dir / f"{id}.jsonl" if self.log_dir else None
        kwargs.setdefault("glossary", self.options.glossary)
        session = self.engine.session(log_path=log_path, keep_records=False, voice=self.options.voice, voice_owner=self.voice_owner,
                                      share_voices=self.options.share_voices, **kwargs)
        self.served += 1
        self.metrics.sessions.inc()
        self.captions.open(id)
        return session

    def release(self) -> None:
        """An admitted connection's place is free: its session's thread ended, or it never started."""
        self.active -= 1

    def closed(self, code: int) -> None:
        """A connection closed (or was refused) with ``code``."""
        self.closes[code] += 1
        self.metrics.closed(code)

    def recorded(self, id: str, rec: UtteranceRecord, source: Sequence[UtteranceRecord]) -> None:
        """Session ``id`` logged an utterance (on its thread): its latencies into the metrics, its
        caption to the overlays."""
        self.metrics.utterance(rec, source)
        self.captions.add(id, rec)

    def occupancy(self) -> str:
        return f"{self.active}/{self.max_sessions}"

    # -- admission -------------------------------------------------------------------------

    def check_query(self, ws: WebSocket) -> tuple[str, str, str]:
        """The session's (from, to, speaker), or a 4400 refusal naming what is wrong."""
        q = ws.query_params
        langs = []
        for key in ("from", "to"):
            value = q.get(key)
            if not value:
                raise Refusal(4400, f"missing {key}: connect to /ws?from=LANG&to=LANG (ISO 639-1 codes, e.g. from=es&to=en)")
            if not LANG.fullmatch(value):
                raise Refusal(4400, f"unknown language {value[:16]!r} in {key}: give an ISO 639-1 code such as es or en")
            langs.append(value)
        speaker = q.get("speaker", "")
        if speaker and not SPEAKER.fullmatch(speaker):
            raise Refusal(4400, "speaker must be 1-64 letters, digits, '.', '-' or '_'")
        try:
            self.engine.check_languages(langs[0], langs[1])
        except InputError as exc:
            raise Refusal(4400, str(exc)) from None
        return langs[0], langs[1], speaker

    def check_room(self) -> None:
        if self.active >= self.max_sessions:
            raise Refusal(1013, f"the server is busy: it already holds {self.max_sessions} sessions (--max-sessions); try again later")


ANONYMOUS = "anonymous"  # the voice owner of a server's clients when it has no token: nobody told apart


def token_owner(token: str) -> str:
    """The voice owner of a token's clients: a slow salted hash, so that a voice's owner record
    (TtsBackend.new_voice) neither holds the token nor lets it be guessed quickly."""
    digest = hashlib.pbkdf2_hmac("sha256", token.encode(), b"s3tvr voice owner", 200_000)
    return f"token:{digest.hex()[:32]}"


def request_origin(ws: WebSocket) -> Optional[tuple[str, str, int]]:
    """The origin of this server's own pages at the address the client asked for (its Host
    header), as :func:`~s3tvr.serve.origin_key` gives it: http for ws, https for wss."""
    host = ws.headers.get("host")
    scheme = {"ws": "http", "wss": "https"}.get(ws.url.scheme)
    return origin_key(f"{scheme}://{host}") if host and scheme else None


def create_app(engine: Engine, options: Optional[ServeOptions] = None) -> Starlette:
    """The ASGI app over a loaded engine (``app.state.server`` is its :class:`Server`)."""
    return Server(engine, options).app()


def serve(engine: Engine, options: Optional[ServeOptions] = None) -> None:
    """Load the engine's models, then serve until SIGINT/SIGTERM (uvicorn's handlers stop it
    gracefully, then raise the signal again for the caller's own handler)."""
    import uvicorn

    options = options or ServeOptions()
    host = options.host
    if not options.token and not is_loopback(host):
        log.warning("serving on %s without a token: anyone who can reach it can use it; set --token (or S3TVR_TOKEN)", host)
    if ANY_ORIGIN in options.allow_origins:
        log.warning("--allow-origin *: any web page a visitor of it opens may use this server%s",
                    "" if options.token else " (it has no token: set --token)")
    elif NULL_ORIGIN in options.allow_origins:
        log.warning("--allow-origin null: pages with no origin may use this server, and any site can make one (a sandboxed "
                    "iframe)%s", "" if options.token else ": set --token")
    if options.log_dir:
        files.check_output(options.log_dir, "--log-dir", folder=True)
    sock = bind(host, options.port)  # before the models load: a busy port shows at once; clients are accepted once loaded
    try:
        engine.setup()
        if options.log_dir:
            Path(options.log_dir).mkdir(parents=True, exist_ok=True)
        app = create_app(engine, options)
        shown = f"[{host}]" if ":" in host else host
        pair = " <-> ".join(engine.languages) if engine.languages else f"{engine.config.src_lang} -> {engine.config.tgt_lang}"
        log.info("serving %s with %s on http://%s:%d/ (WebSocket /ws, at most %d sessions; Ctrl-C stops)",
                 pair, engine.description, shown, sock.getsockname()[1], options.max_sessions)
        uvicorn.Server(uvicorn_config(app)).run(sockets=[sock])
    finally:
        sock.close()


def uvicorn_config(app: Starlette) -> Any:
    """How uvicorn runs the app: our logging (its own only when debugging: it logs each
    connection's URL, token included), frames up to twice MAX_FRAME read (larger ones uvicorn
    closes with 1009 itself; those between get the reason), a bounded graceful shutdown."""
    import uvicorn

    debug = logging.getLogger("s3tvr").getEffectiveLevel() <= logging.DEBUG
    return uvicorn.Config(app, log_config=None, log_level="info" if debug else "warning", access_log=debug, lifespan="off",
                          ws=_websocket_protocol(), ws_max_size=2 * MAX_FRAME, timeout_graceful_shutdown=5)


@functools.cache
def _websocket_protocol() -> type:
    """uvicorn's WebSocket protocol (websockets' sans-I/O, what ``auto`` picks), answering a handshake
    it cannot read. A request line past websockets' 8 KB (a long URL: a glossary in the query) or
    header fields too large get their 414 or 431 written by websockets, but uvicorn 0.54 sends it
    only for a request it parsed: the connection would hang open, unanswered, until the client
    gave up. Here the answer goes out and the connection closes."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    class Protocol(WebSocketsSansIOProtocol):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.handshake_exc is not None and not self.handshake_initiated and not self.transport.is_closing():
                log.warning("refused a handshake it could not read: %s", self.conn.handshake_exc)
                self.transport.write(b"".join(self.conn.data_to_send()))
                self.transport.close()

    return Protocol


def is_address(host: str) -> bool:
    """An IP address or localhost: a host name no DNS answer can point elsewhere."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, not listening yet (connections are refused until the server starts)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise InputError(f"cannot serve on {host}: {exc.strerror}: give an address of this machine (--host)") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait for old connections to time out
        # Connections inherit it: the kernel holds at most this much (about 3 s of audio) for a client
        # that stops reading, so the server's own count of its unread audio is nearly all of it.
        # Autotuning would allow 4 MB; 128 KiB still carries the audio over a 1 s round trip.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port (or stop what uses it)") from None
    return sock
