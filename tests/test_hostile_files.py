"""Nothing a clumsy or hostile input can break (issue 34), for s3tvr dub: the files a user edits
(the segments file, the speakers file), the places a dub writes, what a catalogue takes for its
inputs, and the text of subtitles. Each is refused in one line naming the file, the field and the
fix (exit 2), before any model loads and before anything is written; the validators are fuzzed
with Hypothesis (derandomized: the same examples on every run)."""

from __future__ import annotations

import copy
import html
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3tvr import edited_json
from s3tvr.dub import catalogue, segments, subtitles, voices
from s3tvr.dub.fit import Slot, plan
from s3tvr.errors import InputError

from conftest import DATA, one_line_error, s3tvr

AUDIO = DATA / "fleurs-es-002.ogg"  # 9.72 s of Spanish speech
DURATION = 9.72
DUB = ("--from", "es", "--to", "en")
FUZZ = settings(derandomize=True, max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def valid_segments() -> dict[str, Any]:
    """A segments file as s3tvr dub writes it for AUDIO."""
    return {"input": str(AUDIO), "from": "es", "to": "en", "voices": {"S1": ""},
            "phrases": [{"id": 0, "start": 0.52, "end": 4.1, "speaker": "S1", "source": "Hola, me llamo Ana.",
                         "translation": "Hello, my name is Ana."},
                        {"id": 1, "start": 4.6, "end": 9.3, "speaker": "S1", "source": "Vivo en Madrid.",
                         "translation": "I live in Madrid."}]}


def valid_speakers() -> dict[str, Any]:
    unit = np.full(voices.PRINT, 1 / math.sqrt(voices.PRINT)).round(5).tolist()
    return {"speakers": {"Ana": {"voice": "", "seconds": 12.5, "print": unit}}}


def edited(change: Callable[[dict], Any]) -> bytes:
    data = valid_segments()
    change(data)
    return json.dumps(data).encode()


def nested(depth: int) -> bytes:
    return b'{"phrases": ' + b"[" * depth + b"]" * depth + b"}"


def written(folder: Path) -> set[str]:
    """Everything in ``folder`` (hidden partial files too)."""
    return {p.name for p in folder.iterdir()}


# -- the segments file, through the command --------------------------------------------------------

EDITS = {
    "negative start": (edited(lambda d: d["phrases"][0].update(start=-0.5)), ["phrases[0].start", "between 0"]),
    "last end before its start": (edited(lambda d: d["phrases"][1].update(end=4.6)), ["phrases[1].end", "after start"]),
    "NaN": (json.dumps(valid_segments()).replace("4.1", "NaN").encode(), ["phrases[0].end", "finite number, not NaN"]),
    "Infinity": (json.dumps(valid_segments()).replace("9.3", "Infinity").encode(), ["phrases[1].end", "Infinity"]),
    "1e999": (json.dumps(valid_segments()).replace("9.3", "1e999").encode(), ["phrases[1].end", "finite"]),
    "voices as a list": (edited(lambda d: d.update(voices=["joe"])), ["voices", "must be an object"]),
    "nested a million deep": (nested(1_000_000), ["nested more than 16 deep"]),
    "past the input's end": (edited(lambda d: d["phrases"][1].update(start=10.0, end=12.0)),
                             ["phrases[1].end", "phrase 1", "past the end of the input (9.72 s long)", "move it inside"]),
    "115 KB for a 2 s slot": (edited(lambda d: d["phrases"][0].update(translation="la " * 38_000)),
                              ["phrases[0].translation", "114000 characters"]),
    "cannot fit its slot": (edited(lambda d: d["phrases"][0].update(translation="word " * 60)),
                            ["phrases[0].translation", "could not be spoken in phrase 0's", "shorten it"]),
    "a misspelt key": (edited(lambda d: d["phrases"][0].update(translaton="Hi")), ['unknown key "translaton"']),
    "not JSON": (b'{"phrases": [', ["not JSON (line 1"]),
}


@pytest.mark.parametrize("name", EDITS)
def test_an_edited_segments_file_is_refused_in_one_line_before_any_work(tmp_path, name):
    data, words = EDITS[name]
    (tmp_path / "talk.en.segments.json").write_bytes(data)
    proc = s3tvr("dub", AUDIO, *DUB, "-o", tmp_path / "talk.en.wav", "--resume")
    one_line_error(proc, "talk.en.segments.json:", *words)
    assert proc.returncode == 2
    assert written(tmp_path) == {"talk.en.segments.json"}  # no work folder, no output, no partial file


def test_an_edited_segments_file_read_as_the_dubber_reads_it():
    edit = segments.parse(json.dumps(valid_segments()).encode(), "talk.en.segments.json", DURATION)
    assert [(p.id, p.start, p.end, p.speaker, p.translation) for p in edit.phrases] == [
        (0, 0.52, 4.1, "S1", "Hello, my name is Ana."), (1, 4.6, 9.3, "S1", "I live in Madrid.")]
    assert edit.voices == {"S1": ""}
    # null where a voice or a speaker goes is none; a phrase may end within the file's rounding of the end
    data = valid_segments()
    data["voices"]["S1"], data["phrases"][1]["speaker"], data["phrases"][1]["end"] = None, None, DURATION + 0.005
    edit = segments.parse(json.dumps(data).encode(), "s.json", DURATION)
    assert edit.voices == {"S1": ""} and edit.phrases[1].speaker == ""
    # the phrases a dub groups from words end within the input, so its own file is never refused
    from s3tvr.backends.kinds import Word
    from s3tvr.dub.phrases import group_words

    grouped = group_words([Word("Hola.", 0.5, 1.0), Word("Sí.", DURATION - 0.05, DURATION - 0.04)], total=DURATION)
    assert grouped[-1].end <= DURATION
    segments.parse(json.dumps(segments.to_json(AUDIO, "es", "en", {}, grouped)).encode(), "s.json", DURATION)


# -- the speakers file and the places a dub writes ---------------------------------------------------

@pytest.fixture
def read_only_folder(tmp_path) -> Path:
    """A folder this user may not write into (root may write anywhere a mode forbids: /sys is
    read-only for everyone)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir(mode=0o555)
        yield folder
        folder.chmod(0o755)
    elif not os.access("/sys", os.W_OK) or _unwritable(Path("/sys")):
        yield Path("/sys")
    else:
        pytest.skip("no read-only folder here")


def _unwritable(folder: Path) -> bool:
    try:
        (folder / ".s3tvr-probe").touch()
    except OSError:
        return True
    (folder / ".s3tvr-probe").unlink()
    return False


def test_a_broken_speakers_file_is_refused_in_one_line_before_any_work(tmp_path):
    out = tmp_path / "talk.en.wav"
    speakers = tmp_path / "show.speakers.json"
    for data, words in ((b'{"speakers": ' + b"[" * 100_000, ["nested more than 16 deep"]),
                        (json.dumps(valid_speakers()).replace("12.5", "NaN").encode(), ["speakers.Ana.seconds", "NaN"]),
                        (json.dumps({"speakers": {"Ana": {"print": [0.1] * 3}}}).encode(), ["speakers.Ana.print", "exactly 256"]),
                        (json.dumps({"speakers": ["Ana"]}).encode(), ["speakers", "must be an object"])):
        speakers.write_bytes(data)
        one_line_error(s3tvr("dub", AUDIO, *DUB, "-o", out, "--speakers-file", speakers), "show.speakers.json:", *words)
        assert written(tmp_path) == {"show.speakers.json"}
    # a catalogue refuses it once, before any file is dubbed
    one_line_error(s3tvr("dub", AUDIO, *DUB, "--to", "en,fr", "-o", tmp_path / "out", "--speakers-file", speakers),
                   "show.speakers.json:", "speakers", "must be an object")
    assert written(tmp_path) == {"show.speakers.json"}


def test_every_place_a_dub_writes_is_checked_before_any_work(tmp_path, read_only_folder):
    out = tmp_path / "talk.en.wav"
    one_line_error(s3tvr("dub", AUDIO, *DUB, "-o", out, "--speakers-file", tmp_path), "is a folder", "--speakers-file")
    one_line_error(s3tvr("dub", AUDIO, *DUB, "-o", out, "--speakers-file", read_only_folder / "show.speakers.json"),
                   "cannot write", "--speakers-file")
    one_line_error(s3tvr("dub", AUDIO, *DUB, "-o", out, "--speakers-file", AUDIO), "is the input", "--speakers-file")
    one_line_error(s3tvr("dub", AUDIO, *DUB, "-o", out, "--speakers-file", tmp_path / "talk.en.sync.json"),
                   "is the dub's sync report")
    one_line_error(s3tvr("dub", AUDIO, *DUB, "-o", tmp_path / "missing" / "talk.en.wav"), "does not exist")
    assert written(tmp_path) == set()
    for name, what in (("talk.en.segments.json", "segments file"), ("talk.en.sync.json", "sync report"),
                       ("talk.en.en.srt", "subtitles"), ("talk.en.es.vtt", "subtitles")):
        (tmp_path / name).mkdir()
        one_line_error(s3tvr("dub", AUDIO, *DUB, "-o", out), f"{name} is a folder, where the dub writes its {what}")
        assert written(tmp_path) == {name}  # nothing else: no work folder, no partial file
        (tmp_path / name).rmdir()
    (tmp_path / "talk.en.work").write_text("a file")
    one_line_error(s3tvr("dub", AUDIO, *DUB, "-o", out), "--work-dir", "is a file")
    one_line_error(s3tvr("dub", AUDIO, *DUB, "-o", out, "--work-dir", read_only_folder / "w"), "cannot write", "--work-dir")
    one_line_error(s3tvr("dub", AUDIO, *DUB, "--to", "en,fr", "-o", read_only_folder / "dubs"), "cannot write", "-o")
    assert written(tmp_path) == {"talk.en.work"}


# -- a catalogue dubbed into its own folder ---------------------------------------------------------

def test_a_catalogue_dubbed_into_its_own_folder_skips_what_it_wrote(tmp_path):
    folder = tmp_path / "talks"
    folder.mkdir()
    shutil.copy(AUDIO, folder / "x.ogg")
    # what an earlier `s3tvr dub talks -o talks --to en,fr` left: each dub beside its side files
    for lang in ("en", "fr"):
        shutil.copy(AUDIO, folder / f"x.{lang}.ogg")
        for side in ("sync.json", "segments.json", f"{lang}.srt", f"{lang}.vtt", "es.srt", "es.vtt"):
            (folder / f"x.{lang}.{side}").write_text("{}")
        (folder / f"x.{lang}.work").mkdir()
        shutil.copy(AUDIO, folder / f"x.{lang}.work" / "voice.ogg")
    (folder / "catalogue.json").write_text("{}")
    before = written(folder)
    # the folder (its media files), then a glob that takes every file in it
    for inputs, skipped in ((folder, 2), (f"{folder}/*", 2 + 2 * 6 + 1)):
        proc = s3tvr("dub", inputs, *DUB, "-o", folder)
        assert proc.returncode == 0, proc.stderr
        assert f"skipped {skipped} files this catalogue wrote into {folder}" in proc.stderr
        jobs = json.loads((folder / "catalogue.json").read_text())["jobs"]
        assert [(Path(j["input"]).name, j["status"]) for j in jobs] == [("x.ogg", "skipped")]  # already dubbed
        assert written(folder) == before  # no x.en.en.ogg
    # nothing but earlier dubs: nothing to dub, said in one line
    (folder / "x.ogg").unlink()
    one_line_error(s3tvr("dub", folder, *DUB, "-o", folder), "every input is a file dubbed into", "nothing new to dub")


def test_own_outputs_are_known_without_their_sync_report(tmp_path):
    """A dub that died between writing its output and its report: the output is still no input."""
    for name in ("x.wav", "x.en.wav", "y.en.wav", "sub/z.en.wav"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    inputs = [tmp_path / n for n in ("x.wav", "x.en.wav", "y.en.wav", "sub/z.en.wav")]
    kept, skipped = catalogue.without_own_outputs(inputs, ["en"], tmp_path)
    assert [p.name for p in skipped] == ["x.en.wav"]  # x's dub; y.en.wav may be an English original
    assert [p.name for p in kept] == ["x.wav", "y.en.wav", "z.en.wav"]
    # into another folder, a catalogue's inputs are all its own to dub
    assert catalogue.without_own_outputs(inputs, ["en"], tmp_path / "out") == (inputs, [])


# -- subtitle text -----------------------------------------------------------------------------------

HOSTILE_TEXTS = ["Tom & Jerry <3", "a --> b", "<b>bold</b> &amp;", "line one\n\nline two", "x\u2028\u2028y",
                 "-->", "1\n00:00:01,000 --> 00:00:02,000\nforged", "NOTE this", "  spaced\tout  \r\n ", "<v Ana>hi"]


def expected(text: str, srt: bool) -> str:
    one = " ".join(text.split())
    return one.replace("-->", "→") if srt else one


def read_back(rendered_srt: str, rendered_vtt: str) -> tuple[list[str], list[str], list]:
    import srt
    import webvtt

    srt_texts = [s.content.replace("\n", " ") for s in srt.parse(rendered_srt)]
    vtt = list(webvtt.from_string(rendered_vtt))
    # webvtt-py keeps the escapes as they are in the file: a reader shows them unescaped
    return srt_texts, [html.unescape(c.text).replace("\n", " ") for c in vtt], vtt


def test_subtitle_text_survives_every_reader():
    cues = [(i * 2.0, i * 2.0 + 1.5, text, "Ana & <Bo>" if i % 2 else "") for i, text in enumerate(HOSTILE_TEXTS)]
    srt_texts, vtt_texts, vtt = read_back(subtitles.render(cues, "srt"), subtitles.render(cues, "vtt"))
    assert vtt_texts == [expected(t, srt=False) for t in HOSTILE_TEXTS]
    assert srt_texts == [(("Ana & <Bo>: " if i % 2 else "") + expected(t, srt=True)) for i, t in enumerate(HOSTILE_TEXTS)]
    assert [html.unescape(c.voice) if c.voice else "" for c in vtt] == [c[3] for c in cues]
    assert [(c.start, c.end) for c in vtt][:2] == [("00:00:00.000", "00:00:01.500"), ("00:00:02.000", "00:00:03.500")]
    assert [c[2].replace("\n", " ") for c in subtitles.shown(cues)] == srt_texts  # the video's tracks: as the .srt


@FUZZ
@given(st.lists(st.text(min_size=1, max_size=120).filter(str.strip), min_size=1, max_size=5))
def test_any_subtitle_text_round_trips(texts):
    cues = [(i * 2.0, i * 2.0 + 1.5, text) for i, text in enumerate(texts)]
    srt_texts, vtt_texts, _ = read_back(subtitles.render(cues, "srt"), subtitles.render(cues, "vtt"))
    assert srt_texts == [expected(t, srt=True) for t in texts]
    assert vtt_texts == [expected(t, srt=False) for t in texts]


# -- the validators, fuzzed --------------------------------------------------------------------------

def refused_in_one_line(exc: InputError, name: str) -> None:
    message = str(exc)
    assert message.splitlines() == [message] and message.startswith(f"{name}: "), message


def dubbable(edit: segments.Edited) -> None:
    """What the dubber does with the phrases it read, short of the models: fit, subtitle, write back."""
    plan([Slot(p.start, p.end) for p in edit.phrases], [p.duration * 1.5 for p in edit.phrases], total=DURATION)
    for fmt in ("srt", "vtt"):
        subtitles.render([(p.start, p.end, p.translation, p.speaker) for p in edit.phrases], fmt)
    again = json.dumps(segments.to_json(AUDIO, "es", "en", edit.voices, edit.phrases), ensure_ascii=False).encode()
    assert [p.to_json() for p in segments.parse(again, "s.json", DURATION).phrases] == [p.to_json() for p in edit.phrases]


def check_segments(data: bytes) -> None:
    try:
        edit = segments.parse(data, "talk.en.segments.json", DURATION)
    except InputError as exc:
        refused_in_one_line(exc, "talk.en.segments.json")
        return
    dubbable(edit)


def check_speakers(data: bytes) -> None:
    try:
        known = voices.parse_known(data, "show.speakers.json")
    except InputError as exc:
        refused_in_one_line(exc, "show.speakers.json")
        return
    voices.names_for(np.eye(2, voices.PRINT, dtype=np.float32), known)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=30)
# what a clumsy or hostile edit puts where a value was
ODD = st.sampled_from([math.nan, math.inf, -math.inf, -1, -1e-9, 0, 1e308, 10**40, 10**400, True, None, "", "x" * 200_000,
                       "\x00", "\ud800", "a\u2028b", [], {}, [1.0] * 256, {"a": 1}, 3.0, "1.5", 2**63])


@FUZZ
@given(JSON)
def test_any_json_is_read_or_refused_in_one_line(value):
    data = json.dumps(value).encode()  # NaN and Infinity as Python writes them
    check_segments(data)
    check_speakers(data)
    check_segments(json.dumps({"phrases": value}).encode())
    check_speakers(json.dumps({"speakers": value}).encode())


def paths(value: Any, at: tuple = ()) -> list[tuple]:
    """Every place in a JSON value: the keys and indexes that lead there."""
    inner = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    return [at] + [p for k, v in inner for p in paths(v, (*at, k))]


def mutate(data: Any, path: tuple, how: str, odd: Any) -> Any:
    data = copy.deepcopy(data)
    if not path:
        return odd
    parent = data
    for k in path[:-1]:
        parent = parent[k]
    if how == "drop":
        del parent[path[-1]]
    elif how == "nest" and isinstance(odd, int) and not isinstance(odd, bool) and 0 < odd < 10**6:
        parent[path[-1]] = json.loads("[" * min(odd, 40) + "]" * min(odd, 40))
    else:
        parent[path[-1]] = odd
    return data


@FUZZ
@given(st.data())
def test_a_mutated_segments_file_is_read_or_refused_in_one_line(data):
    original = valid_segments()
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(original)))
        original = mutate(original, path, data.draw(st.sampled_from(["set", "drop", "nest"])),
                          data.draw(ODD | JSON | st.integers(1, 40)))
    check_segments(json.dumps(original).encode())


@FUZZ
@given(st.data())
def test_a_mutated_speakers_file_is_read_or_refused_in_one_line(data):
    original = valid_speakers()
    path = data.draw(st.sampled_from(paths(original)[:8]))  # the prints' 256 numbers are alike: the first few
    check_speakers(json.dumps(mutate(original, path, data.draw(st.sampled_from(["set", "drop"])), data.draw(ODD | JSON))).encode())


@FUZZ
@given(st.binary(max_size=300), st.integers(0, 400), st.integers(0, 50))
def test_corrupted_bytes_are_read_or_refused_in_one_line(noise, at, cut):
    for original in (json.dumps(valid_segments()).encode(), json.dumps(valid_speakers()).encode()):
        at = min(at, len(original))
        data = original[:at] + noise + original[at + cut:]
        check_segments(data)
        check_speakers(data)


@FUZZ
@given(st.lists(st.sampled_from(['[', ']', '{', '}', '"', '\\', '"[', ']"', ',', ':', '1', '"a":']), max_size=200))
def test_brackets_anywhere_never_reach_the_parser_deeper_than_the_bound(tokens):
    data = "".join(tokens).encode()
    try:
        edited_json.parse(data, edited_json.Text(10))
    except edited_json.Invalid as exc:
        assert "\n" not in str(exc)
    check_segments(data)
    check_speakers(data)
