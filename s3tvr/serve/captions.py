"""The caption overlay of ``s3tvr serve``: ``/captions``, a transparent page of large captions for
an OBS browser source or a second screen (docs/serve.md, "Captions"), and the feed behind it.

The feed keeps each session's last committed lines (s3tvr.live.captions.caption_of: what was
logged, never taken back) and hands them to the overlays watching it over ``/captions/ws``: first
the lines so far, then each new one as its session logs it. A watcher follows one session by id,
or the latest: the session opened last, switching when a new one opens. Sessions are fed on their
own threads; each watcher's queue lives on the event loop, so lines cross with call_soon_threadsafe.
Bounded everywhere: lines kept per session, sessions kept, watchers, and what waits for a watcher.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Optional

from starlette.websockets import WebSocket, WebSocketDisconnect

from s3tvr.latency.record import UtteranceRecord
from s3tvr.live.captions import Caption, caption_of
from s3tvr.serve.transport import Refusal

log = logging.getLogger(__name__)

KEEP_LINES = 50  # per session: more than any overlay shows (its lines= is at most MAX_LINES)
KEEP_SESSIONS = 16  # ended ones too, so an overlay opened after its session still shows the last lines
MAX_WATCHERS = 64  # overlays at once; more are refused (1013)
MAX_WAITING = 256  # messages waiting for one watcher before it is dropped: one that stops reading
LATEST = "latest"
SESSION_ID = re.compile(r"[\w-]{1,64}")  # a session's id as connection.Connection makes it


@dataclass(eq=False)
class Watcher:
    """One overlay: the session it asked for (LATEST: whichever was opened last), the one it shows
    now, and its queue on the event loop."""

    wants: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    session: Optional[str] = None
    dropped: bool = False


class CaptionFeed:
    """Each session's last committed lines, and the overlays watching them."""

    def __init__(self, keep_lines: int = KEEP_LINES, keep_sessions: int = KEEP_SESSIONS, max_watchers: int = MAX_WATCHERS):
        self.keep_lines, self.keep_sessions, self.max_watchers = keep_lines, keep_sessions, max_watchers
        self._lock = threading.Lock()  # sessions add lines on their own threads
        self._sessions: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()  # oldest opened first
        self._watchers: set[Watcher] = set()

    @property
    def latest(self) -> Optional[str]:
        with self._lock:
            return next(reversed(self._sessions), None)

    def open(self, session: str) -> None:
        """A session starts: it is the latest now, and watchers of the latest follow it."""
        with self._lock:
            self._sessions[session] = collections.deque(maxlen=self.keep_lines)
            while len(self._sessions) > self.keep_sessions:
                self._sessions.popitem(last=False)
            for w in self._watchers:
                if w.wants == LATEST:
                    w.session = session
                    self._post(w, {"type": "session", "session": session})

    def add(self, session: str, rec: UtteranceRecord) -> Optional[Caption]:
        """A session logged ``rec`` (on its thread): its caption, if it shows one, to its watchers."""
        caption = caption_of(rec)
        if caption is None:
            return None
        with self._lock:
            lines = self._sessions.get(session)
            if lines is None:  # opened so long ago that newer sessions pushed it out
                return caption
            lines.append(caption)
            for w in self._watchers:
                if w.session == session:
                    self._post(w, {"type": "caption", "session": session, **caption.to_json()})
        return caption

    def watch(self, wants: str, loop: asyncio.AbstractEventLoop) -> Watcher:
        """A new overlay's watcher, its first message (the lines so far) already queued; a
        Refusal (1013) when MAX_WATCHERS watch already."""
        with self._lock:
            if len(self._watchers) >= self.max_watchers:
                raise Refusal(1013, f"{self.max_watchers} caption overlays are open already: close one, or try again later")
            watcher = Watcher(wants, loop)
            watcher.session = next(reversed(self._sessions), None) if wants == LATEST else wants
            lines = list(self._sessions.get(watcher.session, ())) if watcher.session else []
            watcher.queue.put_nowait({"type": "captions", "session": watcher.session, "lines": [c.to_json() for c in lines]})
            self._watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        with self._lock:
            self._watchers.discard(watcher)

    def _post(self, w: Watcher, message: dict) -> None:
        """To ``w``'s queue on its loop (the lock is held); one that fell MAX_WAITING behind is dropped."""
        if w.dropped:
            return
        if w.queue.qsize() >= MAX_WAITING:
            w.dropped = True
            message = {"type": "dropped"}
        try:
            w.loop.call_soon_threadsafe(w.queue.put_nowait, message)
        except RuntimeError:  # its loop is closed: the server has stopped
            w.dropped = True


def follow_query(ws: WebSocket) -> str:
    """The session an overlay asks for: an id, or latest (the default); else a 4400 refusal."""
    wants = ws.query_params.get("session") or LATEST
    if wants != LATEST and not SESSION_ID.fullmatch(wants):
        raise Refusal(4400, "session must be a session's id (the page shows it) or latest")
    return wants


async def serve_watcher(feed: CaptionFeed, ws: WebSocket, watcher: Watcher) -> None:
    """Send ``watcher``'s messages until the overlay leaves or stops reading; the overlay sends nothing."""
    async def send() -> None:
        while True:
            message = await watcher.queue.get()
            await ws.send_text(json.dumps(message, ensure_ascii=False))
            if message["type"] == "dropped":
                await ws.close(1008, "the overlay stopped reading its captions")
                return

    async def receive() -> None:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass  # nothing an overlay says is heard

    tasks = [asyncio.ensure_future(t) for t in (send(), receive())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done() and not task.cancelled() and isinstance(task.exception(), Exception):
                exc = task.exception()
                if not isinstance(exc, (WebSocketDisconnect, OSError, RuntimeError)):
                    log.warning("a caption overlay closed by an error: %s", exc)
    finally:
        for task in tasks:
            task.cancel()
        feed.unwatch(watcher)

