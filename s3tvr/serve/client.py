"""``s3tvr client``: a file or the microphone to an ``s3tvr serve`` server, the translation back
to a file or the speaker (docs/serve.md, the WebSocket protocol). :func:`stream_file` is the same for a program (a
benchmark): an array in, a :class:`ClientResult` out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.streams import Reblocker
from s3tvr.errors import InputError, SetupError, brief
from s3tvr.files import SoundFileWriter
from s3tvr.latency.record import UtteranceRecord
from s3tvr.live.messages import AudioChunk, UttInfo
from s3tvr.serve.transport import float_to_pcm, pcm_to_float

log = logging.getLogger(__name__)

FRAME_S = 0.1  # audio per frame sent: the pace of a microphone's buffers
BURST_S = 8.0  # realtime=False: how far ahead of real time to send (the server takes up to 10 s)
READY_TIMEOUT_S = 30.0  # a server answers at once; silence means something else is listening there
SETUP_ERRORS = (1011, 1012, 1013, 1006)  # the server's state, not the request: try again or elsewhere
RECONNECT_CODES = (1012,)  # the replica holding the session was lost (s3tvr serve --ray): another takes it
RECONNECTS = 5  # in a row, then the close is the caller's
BACKOFF_S = (0.5, 8.0)  # first and longest wait before reconnecting
GAP_S = 5.0  # of the audio captured while reconnecting, what is sent on (the server takes 10 s ahead)
MAX_URL = 8000  # a session's address, glossary included: past about 8 KB the server can only answer HTTP 414


@dataclass
class ClientResult:
    """What a session sent back: its audio (``sample_rate``), events, latency records, how it closed."""

    url: str = ""
    session: str = ""
    sample_rate: int = 0
    chunks: list[np.ndarray] = field(default_factory=list, repr=False)  # the audio received, frame by frame
    received_samples: int = 0
    sent_s: float = 0.0  # input audio sent
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)  # every JSON event, in order
    utterances: list[dict[str, Any]] = field(default_factory=list)  # the utterance events: ids and texts
    records: list[UtteranceRecord] = field(default_factory=list)  # each utterance's latency record
    errors: list[str] = field(default_factory=list)  # error events' messages
    done: Optional[dict[str, Any]] = None  # the done event (None: the session did not finish)
    close_code: Optional[int] = None
    close_reason: str = ""
    reconnects: int = 0  # sessions lost with their replica and gone on in a new one
    replicas: list[str] = field(default_factory=list)  # the replica of each connection (ready's "replica"), in order

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)

    @property
    def received_s(self) -> float:
        return self.received_samples / self.sample_rate if self.sample_rate else 0.0

    @property
    def ok(self) -> bool:
        return self.done is not None and self.close_code == 1000

    def summary(self) -> str:
        latencies = [r.latency_s for r in self.records if r.latency_s is not None]
        counts = self.done or {"utterances": len(self.records), "spoken": len(latencies), "failed": len(self.errors)}
        line = (f"{counts['utterances']} utterances ({counts['spoken']} spoken, {counts['failed']} failed), "
                f"{self.sent_s:.1f} s sent, {self.received_s:.1f} s of translated speech received")
        if self.reconnects:
            line += f", {self.reconnects} reconnection{'s' if self.reconnects > 1 else ''} (a replica was lost)"
        if latencies:
            line += f", first audio {statistics.median(latencies):.2f} s after the end of speech (median)"
        return line if self.ok else line + f"; closed {self.close_code}: {self.close_reason or 'no reason'}"

    def check(self) -> None:
        """Raise the server's reason unless the session finished (done, then a normal close)."""
        if self.ok:
            return
        reason = self.close_reason or (self.errors[-1] if self.errors else "")
        if self.close_code in (None, 1006) and not reason:
            raise SetupError(f"the connection to {self.url} was lost before the session finished: is the server still running?")
        what = f"the server closed the session ({self.close_code}): {reason or 'no reason given'}"
        raise SetupError(what) if self.close_code in SETUP_ERRORS else InputError(what)


def session_url(url: str, src: str, tgt: str, speaker: Optional[str] = None, glossary: str = "") -> str:
    """``url`` (ws://HOST:PORT/ws; http:// and a missing path are taken as meant) with the session's
    query: its languages, voice and words (``glossary``: CSV, Glossary.to_query's)."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise InputError(f"{url} is not a server's address: write ws://HOST:PORT/ws (as s3tvr serve prints it)")
    ours = {"from", "to", "speaker"} | ({"glossary"} if glossary else set())
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ours]
    query += [("from", src), ("to", tgt)] + ([("speaker", speaker)] if speaker else []) + ([("glossary", glossary)] if glossary else [])
    made = urlunsplit((scheme, parts.netloc, parts.path if parts.path not in ("", "/") else "/ws", urlencode(query), ""))
    if len(made) > MAX_URL:
        raise InputError(f"the session's address is {len(made)} characters with its glossary, at most {MAX_URL}: send fewer "
                         f"terms, or give the server the file (serve --glossary)")
    return made


async def connect(url: str, token: Optional[str] = None) -> Any:
    """The WebSocket, or a one-line error naming the address and the fix."""
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

    headers = {"Authorization": f"Bearer {token}"} if token else None
    shown = url.split("?")[0]
    try:  # no compression: PCM barely compresses, and it costs both ends CPU
        return await ws_connect(url, additional_headers=headers, compression=None, max_size=4 * 2**20, open_timeout=20)
    except InvalidURI:
        raise InputError(f"{shown} is not a server's address: write ws://HOST:PORT/ws") from None
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (414, 431):
            raise InputError(f"{shown} could not read the request (HTTP {status}: its address or headers are too long): "
                             f"shorten the URL's query") from None
        raise SetupError(f"{shown} refused the WebSocket (HTTP {status}): is it the /ws of an s3tvr server?") from None
    except ConnectionRefusedError:
        raise SetupError(f"cannot connect to {shown}: connection refused: start the server there (s3tvr serve) "
                         f"or give its address") from None
    except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
        raise SetupError(f"cannot connect to {shown}: {brief(exc)}: check the address and that s3tvr serve runs there") from None


async def translate(url: str, frames: AsyncIterator[np.ndarray], src: str, tgt: str, *, token: Optional[str] = None,
                    speaker: Optional[str] = None, on_event: Optional[Callable[[dict], None]] = None,
                    on_audio: Optional[Callable[[np.ndarray, int], None]] = None, keep_audio: bool = True,
                    result: Optional[ClientResult] = None) -> ClientResult:
    """One session: ``frames`` (16 kHz float32 arrays, paced by the caller) to the server, then
    end; returns once the server has closed. ``on_event`` sees each JSON event, ``on_audio``
    each piece of audio (and its rate) as it arrives; ``result`` fills a given object (so that a
    caller stopped half-way keeps what came).

    A session whose replica was lost (close 1012, ``s3tvr serve --ray``) goes on in a new one:
    up to RECONNECTS times, waiting longer each time; the audio meanwhile is sent on (its last
    GAP_S), what the lost replica had not yet translated is lost."""
    result = result if result is not None else ClientResult()
    result.url = url.split("?")[0]
    pump = _Pump(frames)
    wait = BACKOFF_S[0]
    try:
        for attempt in range(RECONNECTS + 1):
            try:
                await _connection(url, pump, src, tgt, token, speaker, on_event, on_audio, keep_audio, result)
            except SetupError:
                if not attempt or attempt == RECONNECTS:
                    raise
                result.close_code = None  # unreachable for now: try again
            retry = result.close_code in RECONNECT_CODES or (attempt and result.close_code in (None, 1013))
            if result.done is not None or not retry or attempt == RECONNECTS:
                return result
            log.warning("session %s closed %s (%s): reconnecting in %.1f s", result.session or "-", result.close_code,
                        result.close_reason or "no reason", wait)
            result.reconnects += 1
            await asyncio.sleep(wait)
            wait = min(2 * wait, BACKOFF_S[1])
            pump.trim(GAP_S)
    finally:
        pump.stop()
    return result


class _Pump:
    """The caller's frames, read by one task for every connection of a session (a cancelled
    ``async for`` would end the caller's generator): a reconnection goes on where the last left."""

    def __init__(self, frames: AsyncIterator[np.ndarray]):
        self.queue: asyncio.Queue = asyncio.Queue()
        self.finished = False  # the end was taken: every later connection just ends
        self.task = asyncio.ensure_future(self._read(frames))

    async def _read(self, frames: AsyncIterator[np.ndarray]) -> None:
        async for frame in frames:
            await self.queue.put(frame)
        await self.queue.put(None)

    async def get(self) -> Optional[np.ndarray]:
        if self.finished:
            return None
        frame = await self.queue.get()
        self.finished = frame is None
        return frame

    def trim(self, keep_s: float) -> None:
        """Drop all but the last ``keep_s`` of audio waiting (a reconnection must not burst far ahead)."""
        frames = []
        while not self.queue.empty():
            frames.append(self.queue.get_nowait())
        kept, total = [], 0
        for frame in reversed(frames):
            if frame is not None:
                total += len(frame)
                if total > keep_s * SAMPLE_RATE:
                    continue
            kept.append(frame)
        for frame in reversed(kept):
            self.queue.put_nowait(frame)

    def stop(self) -> None:
        self.task.cancel()


async def _connection(url: str, pump: _Pump, src: str, tgt: str, token: Optional[str], speaker: Optional[str],
                      on_event: Optional[Callable[[dict], None]], on_audio: Optional[Callable[[np.ndarray, int], None]],
                      keep_audio: bool, result: ClientResult) -> None:
    """One connection of a session: until the server closes it (its code in ``result``)."""
    from websockets.exceptions import ConnectionClosed

    ws = await connect(session_url(url, src, tgt, speaker), token)
    ready = asyncio.Event()
    result.session = ""
    async with ws:
        receiver = asyncio.ensure_future(_receive(ws, result, ready, on_event, on_audio, keep_audio))
        try:
            await asyncio.wait_for(ready.wait(), READY_TIMEOUT_S)  # the ready event, or a refusal
        except asyncio.TimeoutError:
            receiver.cancel()
            raise SetupError(f"{result.url} accepted the WebSocket but sent no ready event in {READY_TIMEOUT_S:.0f} s: "
                             f"is it an s3tvr server?") from None
        if not result.session:
            await receiver
            return

        async def send() -> None:
            try:
                while (frame := await pump.get()) is not None:
                    await ws.send(float_to_pcm(frame))
                    result.sent_s += len(frame) / SAMPLE_RATE
                await ws.send(json.dumps({"type": "end"}))
            except ConnectionClosed:
                pass  # the receiver has the reason

        sender = asyncio.ensure_future(send())
        try:
            await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receiver.done():  # the server closed first: stop sending
                sender.cancel()
            await receiver
        finally:
            sender.cancel()
            receiver.cancel()


async def _receive(ws: Any, result: ClientResult, ready: asyncio.Event, on_event: Optional[Callable], on_audio: Optional[Callable],
                   keep_audio: bool) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        async for message in ws:
            if isinstance(message, bytes):
                samples = pcm_to_float(message[:len(message) // 2 * 2])
                result.received_samples += len(samples)
                if keep_audio:
                    result.chunks.append(samples)
                if on_audio is not None:
                    on_audio(samples, result.sample_rate)
                continue
            try:
                event = json.loads(message)
            except ValueError:
                log.debug("not JSON: %.80s", message)
                continue
            if not isinstance(event, dict):
                continue
            result.events.append(event)
            kind = event.get("type")
            if kind == "ready":
                result.session, result.sample_rate = str(event.get("session", "?")), int(event.get("sample_rate", 24000))
                if "replica" in event:
                    result.replicas.append(str(event["replica"]))
                ready.set()
            elif kind == "utterance":
                result.utterances.append(event)
            elif kind == "latency":
                try:
                    result.records.append(UtteranceRecord.from_json(event.get("record")))
                except ValueError as e:  # the event itself stays in events
                    log.warning("a latency event that is no latency record (%s)", e)
            elif kind == "error":
                result.errors.append(str(event.get("message", "")))
            elif kind == "done":
                result.done = event
            if on_event is not None:
                on_event(event)
    except ConnectionClosed:
        pass  # abnormal closes too: the code says what happened
    finally:
        result.close_code, result.close_reason = ws.close_code, ws.close_reason or ""
        ready.set()


async def paced(audio: np.ndarray, realtime: bool = True, frame_s: float = FRAME_S) -> AsyncIterator[np.ndarray]:
    """``audio`` (16 kHz) in frames of ``frame_s``, each sent once a microphone would have captured
    it; ``realtime=False``: as fast as the server takes (up to BURST_S ahead of real time)."""
    step = max(1, int(frame_s * SAMPLE_RATE))
    lead = 0.0 if realtime else BURST_S
    start = time.monotonic()
    for i in range(0, len(audio), step):
        wait = start + (i + step) / SAMPLE_RATE - lead - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        yield audio[i:i + step]


async def microphone(device: Optional[str] = None, frame_s: float = FRAME_S, listen_to: str = "",
                     duck_db: float = -15.0) -> AsyncIterator[np.ndarray]:
    """The microphone (or a program's audio, a pulse source: :func:`~s3tvr.live.session.live_source`),
    16 kHz, in frames of about ``frame_s``, until the consumer stops."""
    from s3tvr.live.session import live_source

    mic = live_source(device, listen_to, duck_db)
    mic.open()
    loop, blocks, stop = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()

    def pump() -> None:
        try:
            for block in mic.blocks(stop):
                loop.call_soon_threadsafe(blocks.put_nowait, block.samples)
        except RuntimeError:  # the loop closed under it
            pass

    threading.Thread(target=pump, name="s3tvr-client-mic", daemon=True).start()
    log.info("listening (Ctrl-C stops)")
    frames = Reblocker(int(frame_s * SAMPLE_RATE))
    try:
        while True:
            for frame in frames.push(await blocks.get()):
                yield frame
    finally:
        stop.set()
        mic.close()


async def stream_file(url: str, audio16k: np.ndarray, src: str, tgt: str, token: Optional[str] = None, realtime: bool = True,
                      on_event: Optional[Callable[[dict], None]] = None, speaker: Optional[str] = None,
                      frame_s: float = FRAME_S, check: bool = True) -> ClientResult:
    """Stream ``audio16k`` (16 kHz mono float32) at real-time pace (``realtime=False``: as fast as
    the server allows), then end; the translation and its records once the server has closed.
    ``check``: raise the server's reason (InputError/SetupError) unless the session finished."""
    result = await translate(url, paced(audio16k, realtime, frame_s), src, tgt, token=token, speaker=speaker, on_event=on_event)
    if check:
        result.check()
    return result


class _WavOut:
    """The translation as a file, written as it comes (s3tvr.files.SoundFileWriter: a hidden partial
    name, renamed once closed), at the rate of the first audio received."""

    def __init__(self, path: str | Path):
        self.file = SoundFileWriter(path)
        self.file.check()
        self.path = self.file.path

    def write(self, samples: np.ndarray, rate: int) -> None:
        if not self.file.is_open:
            self.file.open(rate)
        self.file.write(samples)

    def close(self) -> bool:
        return self.file.finish()


class _SpeakerOut:
    """The translation on the speaker (s3tvr's SpeakerSink: resampled to the device, gapless) or
    into a virtual microphone named ``virtual_mic`` (:class:`~s3tvr.live.pulse.VirtualMicSink`)."""

    def __init__(self, device: Optional[str] = None, virtual_mic: Optional[str] = None):
        from s3tvr.live.sinks import SpeakerSink

        if virtual_mic:
            from s3tvr.live.pulse import VirtualMicSink

            self.sink: Any = VirtualMicSink(virtual_mic)
        else:
            self.sink = SpeakerSink(device)
        self.sink.check()
        self.utt: Optional[UttInfo] = None
        self.opened = False

    def utterance(self, event: dict) -> None:
        self._end()
        self.utt = UttInfo(int(event.get("utt_id", 0)), "", "", 0.0, 0.0, 0.0, 0.0)

    def write(self, samples: np.ndarray, rate: int) -> None:
        if not self.opened:
            self.sink.open()
            self.opened = True
        if self.utt is None:
            self.utt = UttInfo(0, "", "", 0.0, 0.0, 0.0, 0.0)
        self.sink.write(AudioChunk(self.utt, samples, rate))

    def _end(self) -> None:
        if self.utt is not None and self.opened:
            self.sink.end(self.utt)
        self.utt = None

    def close(self, abort: bool) -> None:
        self._end()
        if self.opened and not abort:
            self.sink.drain(timeout=60.0)
        self.sink.close(abort)


def run(url: str, src: str, tgt: str, input: Optional[str] = None, output: Optional[str] = None, token: Optional[str] = None,
        speaker: Optional[str] = None, input_device: Optional[str] = None, output_device: Optional[str] = None,
        virtual_mic: Optional[str] = None, listen_to: str = "", duck_db: float = -15.0,
        show: Callable[[str], None] = print, captions: Optional[str] = None, glossary: Optional[str] = None) -> ClientResult:
    """The command: a file (real-time pace) or the microphone to the server, the translation to a
    file or the speaker, each utterance's text to ``show`` as it arrives, and to ``captions`` (a
    .vtt or .srt file, the source beside it: s3tvr.live.captions) as the server logs it; the
    session's words from the file ``glossary`` (the server's own otherwise). Stopped (Ctrl-C
    raises KeyboardInterrupt here), what was received is kept. Raises the server's refusal."""
    from s3tvr.audio.decode import load_audio
    from s3tvr.live.captions import CaptionFiles
    from s3tvr.text.glossary import load as load_glossary

    session_url(url, src, tgt, speaker)  # mistakes first: a bad address, then a bad file, before connecting
    if glossary:
        url = session_url(url, src, tgt, speaker, glossary=load_glossary(glossary).to_query())
    cues = CaptionFiles(captions) if captions else None
    if cues is not None:
        cues.check(input)
    audio = load_audio(input, SAMPLE_RATE) if input else None
    out: Any = _WavOut(output) if output else _SpeakerOut(output_device, virtual_mic)
    result, finished = ClientResult(), False

    def on_event(event: dict) -> None:
        if event.get("type") == "utterance":
            show(f"[{event.get('utt_id')}] {event.get('src_text', '')} => {event.get('tgt_text', '')}")
            if isinstance(out, _SpeakerOut):
                out.utterance(event)
        elif event.get("type") == "latency" and cues is not None:
            try:
                cues.add(UtteranceRecord.from_json(event.get("record")))
            except ValueError:  # said once already, by the receiver
                pass
        elif event.get("type") == "error":
            log.warning("server: %s", event.get("message"))
        elif event.get("type") == "ready":
            log.info("session %s: %s -> %s, %s", event.get("session"), src, tgt, input or "the microphone")

    frames = paced(audio) if audio is not None else microphone(input_device, listen_to=listen_to, duck_db=duck_db)
    try:
        asyncio.run(translate(url, frames, src, tgt, token=token, speaker=speaker, on_event=on_event, on_audio=out.write,
                              keep_audio=False, result=result))
        finished = True
    finally:  # stopped or not: what came is kept
        if cues is not None:
            cues.close()
            for path in cues.paths:
                log.info("wrote %s", path)
        if isinstance(out, _WavOut):
            if out.close():
                log.info("wrote %s", output)
            elif finished:
                log.warning("no translated speech received: %s not written", output)
        else:
            out.close(abort=not finished)
    result.check()
    return result
