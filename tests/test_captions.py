"""Captions you can show (docs/live.md and docs/serve.md, "Captions"): live caption files written as
a run goes (``--captions``), valid at every cue and after Ctrl-C; the caption feed and overlay of
``s3tvr serve`` (``/captions``), committed lines only, let in as a session is; and the transcript
pass that gives the source line into English (real Whisper: slow).

The fake backends give deterministic text from real speech (the VAD is real); their scripted ASR
text carries what a cue must escape."""

import asyncio
import html
import json
import re
import signal
import subprocess
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from test_serve import TOKEN, Running
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from s3tvr.latency.record import UtteranceRecord
from s3tvr.live.captions import CaptionFiles, caption_paths
from s3tvr.live.messages import DROPPED_TAIL
from s3tvr.serve import client

from conftest import HANG_S, WHISPER_INTO_ENGLISH, one_line_error, s3tvr, s3tvr_cmd

HOSTILE = "a <b> & c --> d {utt_id}"  # the fake ASR's text: a tag, an ampersand, a timing arrow
LONG_CLIP = "realtimestt_asr-reference.wav"  # 52 s of English speech with pauses: many utterances
CLIP = "fleurs-es-002.ogg"  # 9.7 s, one utterance
STAMP = r"(\d\d):(\d\d):(\d\d)[.,](\d\d\d)"


def seconds(match: tuple[str, ...]) -> float:
    h, m, s, ms = map(int, match)
    return h * 3600 + m * 60 + s + ms / 1000


def parse_strict(text: str, fmt: str) -> list[tuple[float, float, str]]:
    """The cues of a caption file as the formats require them, or an assertion saying what is
    wrong: the header (WebVTT), numbered cues (SubRip), one timing line each with start < end and
    starts in order, no empty cue, no blank line inside one, the text escaped (WebVTT) or free of
    a timing arrow (SubRip); the file ends at a cue's end. Each cue's text as a reader shows it."""
    if fmt == "vtt":
        assert text.startswith("WEBVTT\n\n"), text[:40]
        text = text[len("WEBVTT\n\n"):]
    if not text:
        return []
    assert text.endswith("\n") and not text.endswith("\n\n"), repr(text[-40:])
    cues, last = [], 0.0
    for n, block in enumerate(text[:-1].split("\n\n"), 1):
        lines = block.split("\n")
        if fmt == "srt":
            assert lines.pop(0) == str(n), block
        timing = re.fullmatch(f"{STAMP} --> {STAMP}", lines[0])
        assert timing, block
        start, end = seconds(timing.groups()[:4]), seconds(timing.groups()[4:])
        assert last <= start < end, (last, block)
        last = start
        body = lines[1:]
        assert body and all(line.strip() for line in body), block  # no empty cue, no blank line inside
        joined = " ".join(body)
        if fmt == "vtt":
            assert "<" not in joined and ">" not in joined and "-->" not in joined, joined
            assert re.fullmatch(r"([^&]|&(amp|lt|gt);)*", joined), joined
            joined = html.unescape(joined)
        else:
            assert "-->" not in joined, joined
        cues.append((start, end, joined))
    return cues


def library_read(path: Path) -> list[str]:
    """The cue texts as the readers players use read them (webvtt-py, srt)."""
    import srt
    import webvtt

    text = path.read_text()
    if path.suffix == ".vtt":
        return [html.unescape(c.text).replace("\n", " ") for c in webvtt.from_string(text)]
    return [s.content.replace("\n", " ") for s in srt.parse(text)]


def record(utt_id, src, tgt, start, end, **changes) -> UtteranceRecord:
    rec = UtteranceRecord.from_json({"utt_id": utt_id, "src_lang": "es", "tgt_lang": "en", "seg_start_s": start,
                                     "seg_end_s": end, "src_text": src, "tgt_text": tgt})
    return replace(rec, **changes)


@pytest.mark.parametrize("fmt", ["vtt", "srt"])
def test_a_caption_file_is_valid_at_every_cue_and_shows_only_what_was_said(tmp_path, fmt):
    files = CaptionFiles(tmp_path / f"out.{fmt}")
    files.check()
    records = [
        record(0, "Hola <amigo> & co --> ya", "Hello <friend> & co --> now", 1.0, 2.5),
        record(1, "lo que se cayó", "what fell", 2.6, 3.0, skipped=DROPPED_TAIL),  # a tentative tail dropped: never shown
        record(2, "falló", "failed", 3.0, 4.0, error="tts: boom"),
        record(3, "", "", 4.0, 5.0, skipped="no words recognised"),
        record(4, "una\n\nlínea\u2028sola", "one\n\nline\u2028only", 0.5, 0.6),  # out of order, and too short to read
        record(5, "sólo la fuente", "", 7.0, 8.0, skipped="the translation came out empty"),
    ]
    translation, source = caption_paths(tmp_path / f"out.{fmt}")
    assert source == tmp_path / f"out.src.{fmt}"
    for rec in records:
        files.add(rec)
        for path in (translation, source):  # a program tailing the file reads a valid one after each cue
            if path.exists():
                parse_strict(path.read_text(), fmt)
    files.close()
    arrow = "-->" if fmt == "vtt" else "→"
    tgt, src = parse_strict(translation.read_text(), fmt), parse_strict(source.read_text(), fmt)
    assert [c[2] for c in tgt] == [f"Hello <friend> & co {arrow} now", "one line only"]
    assert [c[2] for c in src] == [f"Hola <amigo> & co {arrow} ya", "una línea sola", "sólo la fuente"]
    assert [c[:2] for c in src] == [(1.0, 2.5), (1.0, 2.0), (7.0, 8.0)]  # in order; at least a second on screen
    assert library_read(translation) == [c[2] for c in tgt] and library_read(source) == [c[2] for c in src]
    assert files.paths == [translation, source]


def test_caption_files_are_checked_before_any_model_loads(tmp_path, data):
    clip = ["es", "--input", data / CLIP, "--fast", "--output", tmp_path / "o.wav"]
    one_line_error(s3tvr("run", *clip, "--captions", tmp_path / "out.txt"), ".vtt", ".srt")
    one_line_error(s3tvr("run", *clip, "--captions", tmp_path / "nowhere" / "out.vtt"), "nowhere", "--captions")
    one_line_error(s3tvr("talk", "es", "en", "--input", data / CLIP, "--captions", tmp_path / "missing" / "c.srt"), "--captions")
    assert not list(tmp_path.iterdir())


def run_with_captions(tmp_path, data, *extra, clip=CLIP, fmt="vtt"):
    out = tmp_path / f"out.{fmt}"
    proc = s3tvr("run", "es", "--config", "fake", "--set", f"asr.text={HOSTILE}", "--input", data / clip, "--output",
                 tmp_path / "o.wav", "--captions", out, *extra)
    assert proc.returncode == 0, proc.stderr
    return proc, out


@pytest.mark.parametrize("fmt", ["vtt", "srt"])
def test_run_writes_both_tracks_on_the_inputs_timeline(tmp_path, data, fmt):
    proc, out = run_with_captions(tmp_path, data, "--fast", "--log", tmp_path / "log.jsonl", clip=LONG_CLIP, fmt=fmt)
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    tgt, src = (parse_strict(p.read_text(), fmt) for p in caption_paths(out))
    assert len(tgt) == len(src) == len(logged) > 3
    arrow = "-->" if fmt == "vtt" else "→"
    for n, (t, s, rec) in enumerate(zip(tgt, src, logged)):
        assert s[2] == f"a <b> & c {arrow} d {n}" and t[2] == f"[en] {s[2]}"
        assert t[0] == s[0] == round(rec["seg_start_s"], 3)  # the speech's place in the file
    assert f"wrote {out}" in proc.stderr and f"wrote {caption_paths(out)[1]}" in proc.stderr


def test_the_caption_file_can_be_followed_and_survives_sigint(tmp_path, data):
    """At real-time pace: the file grows cue by cue while the run goes on, valid whenever it is
    read; SIGINT mid-run leaves it valid, every cue whole."""
    out = tmp_path / "out.vtt"
    proc = subprocess.Popen([*s3tvr_cmd(), "run", "es", "--config", "fake", "--set", f"asr.text={HOSTILE}", "--input",
                             data / LONG_CLIP, "--output", tmp_path / "o.wav", "--captions", out],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    counts = []
    deadline = time.monotonic() + HANG_S
    try:
        while len(set(counts)) < 3 and time.monotonic() < deadline and proc.poll() is None:
            if out.exists():
                counts.append(len(parse_strict(out.read_text(), "vtt")))  # valid at any moment
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert counts == sorted(counts) and len(set(counts)) >= 3, counts  # cue by cue, as they came
    cues = parse_strict(out.read_text(), "vtt")
    assert len(cues) >= counts[-1] and len(parse_strict(caption_paths(out)[1].read_text(), "vtt")) == len(cues)
    assert [c[2] for c in cues] == [f"[en] a <b> & c --> d {n}" for n in range(len(cues))]


def test_the_client_writes_captions_the_server_logged(tmp_path, data):
    server = Running(overrides=[f"asr.text={HOSTILE}"], token=TOKEN)
    try:
        out = tmp_path / "client.srt"
        proc = s3tvr("client", server.url, "--from", "es", "--to", "en", "--input", data / CLIP, "--output", tmp_path / "o.wav",
                     "--token", TOKEN, "--captions", out)
        assert proc.returncode == 0, proc.stderr
    finally:
        server.stop()
    (tgt, src) = (parse_strict(p.read_text(), "srt") for p in caption_paths(out))
    assert [c[2] for c in src] == ["a <b> & c → d 0"] and [c[2] for c in tgt] == ["[en] a <b> & c → d 0"]
    assert 1.0 < src[0][0] < 3.0  # the speech starts about 2 s into the stream


# -- the overlay's feed ------------------------------------------------------------------------


async def watch(port, query, until, headers=None, timeout=60.0):
    """Messages from /captions/ws?query until ``until(messages)`` or the close."""
    messages = []
    async with connect(f"ws://127.0.0.1:{port}/captions/ws?{query}", additional_headers=headers) as ws:
        try:
            while not until(messages):
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
        except ConnectionClosed:
            pass
        return messages, ws.close_code, ws.close_reason


@pytest.fixture(scope="module")
def fake():
    running = Running(overrides=[f"asr.text={HOSTILE}"], token=TOKEN)
    yield running
    running.stop()


def test_the_overlay_and_its_files_are_served(fake):
    base = f"http://127.0.0.1:{fake.port}"
    with urllib.request.urlopen(base + "/captions", timeout=5) as page:
        body = page.read().decode()
        assert page.status == 200 and "/static/captions.js" in body and "/static/captions.css" in body
    for path in ("/static/captions.js", "/static/captions.css"):
        with urllib.request.urlopen(base + path, timeout=5) as f:
            assert f.status == 200
    with urllib.request.urlopen(base + "/", timeout=5) as page:
        assert b'id="overlay"' in page.read()  # the main page links its session's overlay


def test_an_overlay_is_let_in_as_a_session_is(fake):
    for query, headers, code, word in [
        ("session=latest", None, 1008, "token"),
        ("session=latest&token=guess", None, 1008, "wrong token"),
        (f"session=latest&token={TOKEN}", {"Origin": "https://evil.example"}, 1008, "--allow-origin"),
        (f"session=../x&token={TOKEN}", None, 4400, "session"),
    ]:
        messages, closed, reason = asyncio.run(watch(fake.port, query, lambda m: False, headers=headers))
        assert closed == code and word in reason, (query, closed, reason)
        assert messages and messages[-1]["type"] == "error" and "caption" not in json.dumps(messages[:-1])


def test_the_feed_follows_the_latest_session_with_committed_lines_only(fake, data):
    from s3tvr.audio.decode import load_audio

    speech = load_audio(data / CLIP)

    async def both():
        overlay = asyncio.ensure_future(watch(fake.port, f"session=latest&token={TOKEN}",
                                              lambda m: sum(x["type"] == "caption" for x in m) >= 2))
        await asyncio.sleep(0.3)  # the overlay watches before the sessions start
        first = await client.stream_file(fake.url, speech, "es", "en", token=TOKEN)
        second = await client.stream_file(fake.url, speech, "es", "en", token=TOKEN)
        return first, second, await overlay

    first, second, (messages, _, _) = asyncio.run(asyncio.wait_for(both(), 120))
    kinds = [(m["type"], m.get("session")) for m in messages]
    assert kinds == [("captions", None), ("session", first.session), ("caption", first.session),
                     ("session", second.session), ("caption", second.session)], kinds
    line = messages[2]
    assert line["src_text"] == "a <b> & c --> d 0" and line["tgt_text"] == "[en] a <b> & c --> d 0"  # as said: the page escapes
    # An overlay opened later, on the first session by id, gets its lines so far at once.
    later, _, _ = asyncio.run(watch(fake.port, f"session={first.session}&token={TOKEN}", lambda m: len(m) >= 1))
    assert later[0]["type"] == "captions" and [c["tgt_text"] for c in later[0]["lines"]] == ["[en] a <b> & c --> d 0"]


# -- the transcript pass (real Whisper) ----------------------------------------------------------


@pytest.mark.slow
def test_the_transcript_pass_gives_the_source_line_into_english(tmp_path, data):
    """Whisper's translate task has no transcript: with --captions the same Whisper transcribes each
    utterance too, so the source track holds the Spanish and the translation track the English."""
    out = tmp_path / "out.vtt"
    proc = s3tvr("run", "es", *WHISPER_INTO_ENGLISH, "--input", data / CLIP, "--fast", "--output", tmp_path / "o.wav",
                 "--captions", out, "--log", tmp_path / "log.jsonl", timeout=600)
    assert proc.returncode == 0, proc.stderr
    tgt, src = (parse_strict(p.read_text(), "vtt") for p in caption_paths(out))
    assert len(tgt) == len(src) >= 1
    spanish, english = " ".join(c[2] for c in src).lower(), " ".join(c[2] for c in tgt).lower()
    assert re.search(r"\b(que|la|de|el|los|las|se|en)\b", spanish), spanish  # Spanish words: the transcript, not the translation
    assert re.search(r"\b(the|of|and|to|that|was|in)\b", english), english
    assert spanish != english
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert all(r["src_text"] for r in logged if r["tgt_text"])  # the record has it too: the page and the overlay show it
