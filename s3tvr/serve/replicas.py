"""``s3tvr serve --ray ADDRESS --replicas N``: the server as N replicas that a Ray cluster
schedules, behind one routing front on one port (docs/ray.md).

Each replica is a Ray actor owning one engine, loaded once when it starts, and the plain
:class:`~s3tvr.serve.server.Server` on a port of its own, with its own ``--max-sessions``. The
front (this process, which loads no model) serves the page and ``/ws``: it sends each new session
to the replica with the most free places and relays the frames both ways. Why not Ray Serve's
own WebSocket proxy: a replica that dies drops its connections there with 1006 and no reason, and
a session over capacity waits in the handshake instead of being refused (1013); here a lost
replica closes only its own sessions with 1012 "replica lost: reconnect", which ``s3tvr client``
retries on another replica, and Ray restarts the lost one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from s3tvr.errors import SetupError, brief
from s3tvr.latency.record import UtteranceRecord
from s3tvr.serve import ServeOptions
from s3tvr.serve.captions import CaptionFeed
from s3tvr.serve.connection import CLOSE_TIMEOUT_S, close_reason
from s3tvr.serve.metrics import ServeMetrics, SourceRecords
from s3tvr.serve.server import STATIC, Gate, bind, caption_overlay, caption_page, is_loopback, operator_routes, uvicorn_config, web_page
from s3tvr.serve.transport import Refusal

if TYPE_CHECKING:
    from s3tvr.config import Config

log = logging.getLogger(__name__)

NAMESPACE = "s3tvr"  # the Ray namespace of the replica actors: replica-PORT-INDEX
LOST = (1012, "replica lost: reconnect")  # 1012 service restart: the client may try again at once
RECOVER_S = (0.5, 5.0)  # first and longest wait between looks at a lost replica
# Frames the front holds from a replica for a slow client (websockets' default, 16, would be 8 s
# of audio): the replica's --max-unread sees a client that stops reading nearly as soon as alone.
RELAY_FRAMES = 4
START_TIMEOUT_S = 600.0  # a replica's models load in its constructor: the stack takes minutes


@dataclass
class ReplicaOptions:
    address: str = "auto"  # the Ray cluster's (ray start --head prints it); auto: the one on this machine
    replicas: int = 2
    gpus: float = 0.0  # per replica: the scheduler places each on a node with that much GPU free
    cpus: float = 1.0  # per replica


@dataclass
class ReplicaInfo:
    """What the front knows of a replica: where its ``/ws`` is and which incarnation answers there."""

    index: int
    id: str  # INDEX.INCARNATION: in the ready event; a restarted replica has a new one
    url: str  # ws://NODE_IP:PORT/ws
    pid: int


class Replica:
    """One engine and its server, in a Ray actor (wrapped by :func:`_actor_class`). The constructor
    loads the models: Ray runs it again when it restarts a lost replica."""

    def __init__(self, index: int, config: Config, options: ServeOptions):
        import ray
        import uvicorn

        from s3tvr.live.engine import Engine
        from s3tvr.serve.server import create_app

        logging.basicConfig(level=logging.INFO, format="s3tvr: %(message)s")
        if options.log_dir:  # on this replica's node (serve() made it absolute: a worker's cwd is Ray's)
            Path(options.log_dir).mkdir(parents=True, exist_ok=True)
        self.engine = Engine(config)
        self.engine.setup()  # a replica owns its engine: loaded once, here, for all its sessions
        host = ray.util.get_node_ip_address()
        sock = bind(host, 0)  # any free port: several replicas may share a node
        app = create_app(self.engine, options)
        self.uvicorn = uvicorn.Server(uvicorn_config(app))
        threading.Thread(target=self.uvicorn.run, kwargs={"sockets": [sock]}, name="s3tvr-replica", daemon=True).start()
        self.info_ = ReplicaInfo(index, f"{index}.{secrets.token_hex(2)}", f"ws://{host}:{sock.getsockname()[1]}/ws", os.getpid())
        while not self.uvicorn.started:  # it listens within moments; a failure ends the thread and shows in the log
            time.sleep(0.02)
        log.info("replica %s: serving on %s", self.info_.id, self.info_.url)

    def info(self) -> ReplicaInfo:
        return self.info_


def _actor_class(options: ReplicaOptions) -> Any:
    import ray

    # Restarted without end when lost (a crash, its node gone): the cluster keeps N replicas.
    return ray.remote(num_cpus=options.cpus, num_gpus=options.gpus, max_restarts=-1)(Replica)


@dataclass
class _Slot:
    """The front's view of one replica: its actor, where it listens, the sessions sent there."""

    handle: Any
    info: Optional[ReplicaInfo] = None  # None while it is starting or lost
    active: int = 0
    recovering: Optional[asyncio.Task] = field(default=None, repr=False)


class Front:
    """The ASGI app on the public port: the page, ``/ws`` relayed to a replica with room, and what
    one server answers besides: the caption overlay (``/captions``), ``/healthz``, ``/readyz`` and
    ``/metrics``, fed from the sessions' events as they pass through (every session of a replica
    comes through the front)."""

    def __init__(self, slots: list[_Slot], options: ServeOptions):
        self.slots, self.max_sessions = slots, options.max_sessions
        self.gate = Gate(options)  # the replicas see the front, not the page: the front asks
        self.captions = CaptionFeed()  # every replica's sessions, as one server's
        self.metrics = ServeMetrics(active=lambda: sum(s.active for s in self.slots))

    def app(self) -> Starlette:
        app = Starlette(routes=[
            Route("/", web_page),
            WebSocketRoute("/ws", self._websocket),
            Route("/captions", caption_page),
            WebSocketRoute("/captions/ws", self._captions),
            *operator_routes(self.unready, self.metrics),
            Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
        ])
        app.state.front = self
        return app

    async def _captions(self, ws: WebSocket) -> None:
        await caption_overlay(ws, self.captions, self.gate, refused=self.metrics.refused)

    def unready(self) -> str:
        """Why a new session would not be served now ("" if it would): /readyz's answer."""
        up = [s for s in self.slots if s.info is not None]
        if not up:
            return f"no replica up: {len(self.slots)} starting or lost"
        if all(s.active >= self.max_sessions for s in up):
            return f"full: {len(up)} of {len(self.slots)} replicas up, --max-sessions {self.max_sessions} each"
        return ""

    def opened(self, session: str) -> None:
        """A replica's session started (its ready event passed through)."""
        self.metrics.sessions.inc()
        self.captions.open(session)

    def recorded(self, session: str, rec: UtteranceRecord, source: list[UtteranceRecord]) -> None:
        """A replica's session logged ``rec`` (its latency event passed through)."""
        self.metrics.utterance(rec, source)
        self.captions.add(session, rec)

    def pick(self, tried: set[int]) -> Optional[_Slot]:
        """The live replica with the most free places (not yet tried for this client), or None.
        The front's counts are exact: every session of a replica comes through it."""
        live = [s for s in self.slots if s.info is not None and s.info.index not in tried and s.active < self.max_sessions]
        return min(live, key=lambda s: s.active, default=None)

    async def _websocket(self, ws: WebSocket) -> None:
        await ws.accept()  # first, as the server does: a browser sees a refusal's reason only on an open connection
        reason = "origin"
        try:  # the page and the token before the room, as a server checks them: nothing to learn without them
            self.gate.check_origin(ws)
            reason = "token"
            self.gate.check_token(ws)
        except Refusal as refusal:
            self.metrics.refused(reason)
            self.metrics.closed(refusal.code)
            await _refuse(ws, refusal.code, refusal.reason)
            return
        tried: set[int] = set()
        while (slot := self.pick(tried)) is not None:
            info = slot.info
            tried.add(info.index)
            slot.active += 1
            try:
                backend = await self._connect(ws, info)
                if backend is None:
                    self.lost(slot, info)
                    continue  # it could not be reached: the next replica
                await _Relay(ws, backend, info, self).run()
                if backend.protocol.close_rcvd is None:  # no close frame: the replica went away
                    self.lost(slot, info)
            finally:
                slot.active -= 1
            return
        self.metrics.refused("busy")
        self.metrics.closed(1013)
        await _refuse(ws, 1013, f"every replica is busy or lost (--replicas {len(self.slots)}, --max-sessions {self.max_sessions} "
                                "each); try again later")

    async def _connect(self, ws: WebSocket, info: ReplicaInfo) -> Any:
        """The client's query and token to the replica's ``/ws``; None if it cannot be reached."""
        from websockets.asyncio.client import connect

        query = ws.url.query
        auth = ws.headers.get("authorization")
        try:
            return await connect(info.url + (f"?{query}" if query else ""), additional_headers={"Authorization": auth} if auth else None,
                                 compression=None, max_size=None, open_timeout=10, max_queue=RELAY_FRAMES)
        except Exception as exc:  # refused, timed out, a bad handshake: this replica is out for now, the next is tried
            log.warning("replica %s cannot be reached: %s", info.id, brief(exc))
            return None

    def lost(self, slot: _Slot, info: ReplicaInfo) -> None:
        """A replica's connection broke: out of the rotation until its actor answers again
        (Ray restarts it: a new port, a new incarnation)."""
        if slot.info is not info:
            return  # already known
        log.warning("replica %s lost: its sessions are told to reconnect; waiting for Ray to restart it", info.id)
        slot.info = None
        slot.recovering = asyncio.ensure_future(self._recover(slot))

    async def _recover(self, slot: _Slot) -> None:
        from ray.exceptions import ActorDiedError, RayActorError

        wait = RECOVER_S[0]
        while True:
            try:
                slot.info = await slot.handle.info.remote()
                log.info("replica %s back on %s", slot.info.id, slot.info.url)
                return
            except ActorDiedError as exc:  # for good (killed with no restart): the others go on
                log.error("replica gone for good: %s", brief(exc))
                return
            except RayActorError:  # restarting
                await asyncio.sleep(wait)
                wait = min(2 * wait, RECOVER_S[1])


class _Relay:
    """One client's frames to its replica and back, until either side closes. The replica's close
    (code and reason) is the client's; a replica that vanishes is LOST. The session's start and
    records, in its ready and latency events, go to the front on the way (captions, metrics)."""

    def __init__(self, ws: WebSocket, backend: Any, info: ReplicaInfo, front: Front):
        self.ws, self.backend, self.info, self.front = ws, backend, info, front
        self.session: Optional[str] = None  # its id, from the ready event
        self.sources = SourceRecords()
        self.client_code = 1005  # how the client closed, if it left first (1005: no code given)

    async def run(self) -> None:
        tasks = [asyncio.ensure_future(self._up()), asyncio.ensure_future(self._down())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            code = self.client_code
            if tasks[1] in done:  # the replica closed (or vanished): tell the client why
                code, reason = self._close()
                await _close(self.ws, code, reason)
                if self.session is None and code in (4400, 1013):  # the replica refused the session: a refusal, as a server counts it
                    self.front.metrics.refused("query" if code == 4400 else "busy")
            self.front.metrics.closed(code)
        finally:
            for task in tasks:
                task.cancel()
            await self.backend.close()

    def _close(self) -> tuple[int, str]:
        if self.backend.protocol.close_rcvd is None:
            return LOST
        return self.backend.close_code, self.backend.close_reason or ""

    async def _up(self) -> None:
        """Client to replica; returns when the client leaves (the replica then hears the close)."""
        from websockets.exceptions import ConnectionClosed

        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                self.client_code = message.get("code") or 1005
                return
            data = message.get("bytes")
            try:
                await self.backend.send(data if data is not None else message.get("text", ""))
            except ConnectionClosed:
                return  # the replica is gone: _down has its reason

    async def _down(self) -> None:
        """Replica to client, each event as :meth:`_event` makes it."""
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in self.backend:
                if isinstance(message, bytes):
                    await self.ws.send_bytes(message)
                else:
                    await self.ws.send_text(self._event(message))
        except ConnectionClosed:
            pass
        except (WebSocketDisconnect, OSError, RuntimeError):  # the client left while we sent
            await asyncio.Event().wait()  # _up sees the disconnect and ends the relay

    def _event(self, text: str) -> str:
        """A replica's event as the client gets it: the ready event names the replica (``replica``:
        INDEX.INCARNATION) and tells the front the session started; a latency event's record goes
        to the front."""
        try:
            event = json.loads(text)
        except ValueError:
            return text
        if not isinstance(event, dict):
            return text
        if event.get("type") == "ready" and self.session is None:
            self.session = str(event.get("session"))
            self.front.opened(self.session)
            event["replica"] = self.info.id
            return json.dumps(event)
        if event.get("type") == "latency" and self.session is not None:
            try:
                rec = UtteranceRecord.from_json(event.get("record"))
            except ValueError as exc:  # a replica of another version: its captions and latencies are lost, not its session
                log.warning("session %s: a record the front cannot read: %s", self.session, exc)
                return text
            self.front.recorded(self.session, rec, self.sources.add(rec))
        return text


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    try:
        await asyncio.wait_for(ws.close(code, close_reason(reason)), CLOSE_TIMEOUT_S)
    except (asyncio.TimeoutError, WebSocketDisconnect, OSError, RuntimeError):
        pass


async def _refuse(ws: WebSocket, code: int, reason: str) -> None:
    """As a server refuses: the reason as an error event, then as the close frame's."""
    log.warning("refused %d: %s", code, reason)
    try:
        await asyncio.wait_for(ws.send_text(json.dumps({"type": "error", "message": reason})), CLOSE_TIMEOUT_S)
    except (asyncio.TimeoutError, WebSocketDisconnect, OSError, RuntimeError):
        return
    await _close(ws, code, reason)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SetupError("--ray needs Ray: pip install 's3tvr[ray]'") from None
    return ray


def _check_reachable(address: str) -> None:
    """A HOST:PORT that nothing answers on fails at once (Ray itself retries for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # auto, or a ray:// client address: Ray says what is wrong
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise SetupError(f"no Ray cluster at {address}: {exc.strerror or brief(exc)}: start one (ray start --head) "
                         f"or give its address (--ray)") from None


def start(config: Config, options: ServeOptions, replicas: ReplicaOptions, port: int) -> list[_Slot]:
    """Join the cluster and start the replicas (named ``replica-PORT-INDEX`` in namespace s3tvr,
    owned by this process: they end with it); returns once each has loaded its models."""
    ray = _ray()
    # The replicas' log lines, each as it comes: Ray's dedup holds back and folds lines that only
    # differ by replica, which hides one replica's sessions behind another's.
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    _check_reachable(replicas.address)
    try:
        ray.init(address=replicas.address, namespace=NAMESPACE, log_to_driver=True)
    except (ConnectionError, RuntimeError) as exc:
        raise SetupError(f"no Ray cluster at {replicas.address}: start one (ray start --head) or give its address (--ray); "
                         f"one with token authentication needs its token (RAY_AUTH_TOKEN or ~/.ray/auth_token): "
                         f"{brief(exc)}") from None
    actor = _actor_class(replicas)
    log_dir = os.path.abspath(options.log_dir) if options.log_dir else None
    # Replicas bind their node's address themselves.
    inner = ServeOptions(**{**vars(options), "host": "127.0.0.1", "port": 0, "log_dir": log_dir})
    handles = [actor.options(name=f"replica-{port}-{i}").remote(i, config, inner) for i in range(replicas.replicas)]
    try:
        infos = ray.get([h.info.remote() for h in handles], timeout=START_TIMEOUT_S)
    except Exception as exc:
        for handle in handles:
            ray.kill(handle)
        raise SetupError(f"the replicas did not start: {brief(exc)}") from None
    return [_Slot(handle, info) for handle, info in zip(handles, infos)]


def serve(config: Config, options: ServeOptions, replicas: ReplicaOptions) -> None:
    """Start the replicas, then serve the front until SIGINT/SIGTERM; the replicas end with it."""
    import uvicorn

    if not options.token and not is_loopback(options.host):
        log.warning("serving on %s without a token: anyone who can reach it can use it; set --token (or S3TVR_TOKEN)", options.host)
    sock = bind(options.host, options.port)  # first: a busy port shows before minutes of loading
    ray = _ray()
    try:
        port = sock.getsockname()[1]
        slots = start(config, options, replicas, port)
        shown = f"[{options.host}]" if ":" in options.host else options.host
        log.info("serving %s -> %s with %d replicas (%s) on http://%s:%d/ (WebSocket /ws, at most %d sessions a replica; Ctrl-C stops)",
                 config.src_lang, config.tgt_lang, len(slots), ", ".join(s.info.id for s in slots), shown, port, options.max_sessions)
        uvicorn.Server(uvicorn_config(Front(slots, options).app())).run(sockets=[sock])
    finally:
        sock.close()
        if ray.is_initialized():
            ray.shutdown()  # the replicas are this driver's: they end with it
