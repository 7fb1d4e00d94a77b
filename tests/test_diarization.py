"""Who speaks when, and a voice per speaker in a dub, on conversations built from real readers
(FLEURS and LJSpeech clips cut at their pauses and interleaved; s3tvr.eval.conversations) and on a
real meeting (an AMI excerpt: two speakers who talk over each other)."""

import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from s3tvr.audio import SAMPLE_RATE
from s3tvr.dub.diarize import diarize
from s3tvr.eval.conversations import build, der

from conftest import APERTIUM, DATA, s3tvr

pytest.importorskip("resemblyzer")
READERS = {  # one reader each (Resemblyzer: their clips 0.82-0.91 alike, 0.44-0.62 across readers)
    "fleurs-en": [DATA / "fleurs-en-003.ogg", DATA / "fleurs-en-004.ogg"],
    "ljspeech": [DATA / f"lj001-{i:04d}.ogg" for i in (1, 4, 5, 6)],
    "fleurs-es": [DATA / "fleurs-es-000.ogg", DATA / "fleurs-es-002.ogg"],
}
# Another Spanish reader (fleurs-es-001): 0.73-0.75 alike with fleurs-es's clips, where a fixed
# threshold heard one voice.
SAME_LANGUAGE = [READERS["fleurs-es"], [DATA / "fleurs-es-001.ogg"]]
MEETING = DATA / "ami-dev00.flac"  # 30 s: MEE009 20 s, MEE012 8 s, 2 s of it at once (ami-dev00.rttm)


@pytest.fixture(scope="module")
def encoder():
    from s3tvr.backends.voice_similarity import SpeakerEncoder

    enc = SpeakerEncoder()
    enc.setup()
    return enc


@pytest.fixture(scope="module")
def vad():
    from s3tvr.config import load_config
    from s3tvr.live.segmenter import load_vad, speech_regions

    cfg = load_config("offline")
    model = load_vad(cfg.vad.onnx)
    return lambda audio: speech_regions(audio, cfg.vad, model)


def found(conv, vad, encoder, speakers=None):
    d = diarize(conv.audio, vad(conv.audio), encoder, speakers)
    return d, der(conv.turns, [(t.start, t.end, t.speaker) for t in d.turns])


def test_three_readers_are_told_apart(vad, encoder):
    conv = build(list(READERS.values()), seed=7)
    assert len({s for *_, s in conv.turns}) == 3
    d, score = found(conv, vad, encoder)
    assert d.speakers == 3, score
    # >= 90 % of the speech given to the right speaker, under the best mapping of labels
    assert score["missed"] + score["confusion"] <= 10, score
    assert score["der"] <= 10, score
    # every change of speaker found within half a second, those with no pause between them too
    changes = [b[0] for a, b in zip(conv.turns, conv.turns[1:]) if a[2] != b[2]]
    edges = [t.start for t in d.turns[1:]]
    assert all(min(abs(e - c) for e in edges) < 0.5 for c in changes), (changes, edges)


def test_the_number_of_speakers_asked_is_honoured(vad, encoder):
    conv = build([READERS["fleurs-en"], READERS["ljspeech"]], seed=3)
    assert found(conv, vad, encoder)[0].speakers == 2
    assert found(conv, vad, encoder, speakers=3)[0].speakers == 3  # asked, even where the voices say 2
    one, score = found(conv, vad, encoder, speakers=1)
    assert one.speakers == 1 and score["missed"] < 5


def test_two_speakers_of_one_language_are_told_apart(vad, encoder):
    """Five orders of their phrases (40 s each). Measured: seed 4 splits the first reader in two
    (her two FLEURS sessions), 5-8 find two; the issue's target is 90 % of conversations."""
    results = [found(build(SAME_LANGUAGE, seed=seed), vad, encoder) for seed in range(4, 9)]
    right = [score for d, score in results if d.speakers == 2]
    assert len(right) >= 4, [(d.speakers, score) for d, score in results]
    # >= 90 % of the speech to the right speaker, where the count was right
    assert all(score["missed"] + score["confusion"] <= 10 for score in right), right


def meeting_turns() -> list[tuple[float, float, int]]:
    rows = [line.split() for line in MEETING.with_suffix(".rttm").read_text().splitlines()]
    people = sorted({r[7] for r in rows})
    return [(float(r[3]), float(r[3]) + float(r[4]), people.index(r[7])) for r in rows]


def test_a_meetings_count_is_within_one_of_who_speaks(vad, encoder):
    from s3tvr.audio.decode import load_audio

    audio, turns = load_audio(MEETING), meeting_turns()
    d = diarize(audio, vad(audio), encoder)
    speaking = sum(sum(b - a for a, b, s in turns if s == k) >= 3.0 for k in {s for *_, s in turns})
    assert speaking == 2 and abs(d.speakers - speaking) <= 1, d.speakers  # measured: 3 (the runner-up 1)


def test_an_unsure_count_and_overlaps_are_said_and_kept_by_resume(tmp_path):
    src, out = tmp_path / "meeting.flac", tmp_path / "meeting.es.wav"
    shutil.copy(MEETING, src)
    proc = s3tvr("dub", src, "--from", "en", "--to", "es", *APERTIUM, "-o", out, "--subtitles-only", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = re.findall(r"number of speakers is unsure: (\d+) found, (\d+) nearly as likely; .* --speakers (\d+)", proc.stderr)
    assert len(said) == 1, proc.stderr[-3000:]  # said once
    found, other, flag = map(int, said[0])
    assert other == flag != found
    segments = speakers_of(out)
    alternative = segments["alternative"]
    assert alternative["speakers"] == other and f"--speakers {other}" in alternative["take_it"]
    ids = {str(p["id"]): p["speaker"] for p in segments["phrases"]}
    assert alternative["phrases"] and all(ids[i] != who for i, who in alternative["phrases"].items())
    marked = [p for p in segments["phrases"] if "overlap" in p]
    assert marked and all(p["overlap"]["with"] in segments["voices"] and p["overlap"]["with"] != p["speaker"]
                          and p["overlap"]["seconds"] >= 0.2 for p in marked), marked
    # a merge the alternative offers, applied by hand: --resume reads the marks back and keeps them
    for p in segments["phrases"]:
        p["speaker"] = alternative["phrases"].get(str(p["id"]), p["speaker"])
    out.with_name(out.stem + ".segments.json").write_text(json.dumps(segments))
    proc = s3tvr("dub", src, "--from", "en", "--to", "es", *APERTIUM, "-o", out, "--subtitles-only", "--resume", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = speakers_of(out)
    assert again["alternative"] == alternative
    assert [p.get("overlap") for p in again["phrases"]] == [p.get("overlap") for p in segments["phrases"]]
    assert len({p["speaker"] for p in again["phrases"]}) == other


def test_der_counts_each_kind_of_error():
    ref = [(0.0, 10.0, 0), (10.0, 20.0, 1)]
    assert der(ref, [(0.0, 10.0, 5), (10.0, 20.0, 7)])["der"] == pytest.approx(0, abs=0.1)  # labels are mapped
    swapped = der(ref, [(0.0, 15.0, 0), (15.0, 20.0, 1)], collar_s=0)
    assert swapped["confusion"] == pytest.approx(25, abs=0.2) and swapped["missed"] == 0
    half = der(ref, [(0.0, 10.0, 0)], collar_s=0)
    assert half["missed"] == pytest.approx(50, abs=0.2) and half["false_alarm"] == 0
    extra = der(ref, [(0.0, 20.0, 0), (20.0, 25.0, 1)], collar_s=0)
    assert extra["false_alarm"] == pytest.approx(25, abs=0.2) and extra["confusion"] == pytest.approx(50, abs=0.2)
    # two at once for 5 s: one voice named there misses the other; unscored, those frames drop out
    both = [(0.0, 10.0, 0), (5.0, 15.0, 1)]
    one = der(both, [(0.0, 10.0, 0), (10.0, 15.0, 1)], collar_s=0)
    assert one["missed"] == pytest.approx(25, abs=0.2) and one["overlap_s"] == pytest.approx(5, abs=0.05)
    assert der(both, [(0.0, 10.0, 0), (10.0, 15.0, 1)], collar_s=0, score_overlap=False)["der"] == pytest.approx(0, abs=0.2)


@pytest.fixture(scope="module")
def conversation_dub(tmp_path_factory):
    """Two readers in English, dubbed into Spanish offline (Kokoro), with a speakers file."""
    tmp = tmp_path_factory.mktemp("conversation")
    conv = build([READERS["fleurs-en"], READERS["ljspeech"][:2]], seed=1, max_turns=8)
    src = tmp / "talk.wav"
    sf.write(src, conv.audio, SAMPLE_RATE)
    out, speakers_file = tmp / "talk.es.wav", tmp / "show.speakers.json"
    proc = s3tvr("dub", src, "--from", "en", "--to", "es", *APERTIUM, "-o", out, "--background", "duck",
                 "--speakers-file", speakers_file, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "speakers 2, diarization" in proc.stdout  # the printed report says how each was voiced
    return conv, src, out, speakers_file


def speakers_of(out):
    return json.loads(out.with_name(out.stem + ".segments.json").read_text())


def test_a_conversation_is_dubbed_with_a_voice_per_speaker(conversation_dub, encoder):
    conv, _, out, speakers_file = conversation_dub
    report = json.loads(out.with_name("talk.es.sync.json").read_text())["speakers"]
    assert report["found"] == 2 and report["diarization_s"] > 0
    # readers who never talk at once: the overlap said is a few frames near changes of speaker
    assert 0 <= report["overlap_share"] < 0.1 and report["phrases_overlapped"] >= 0, report
    segments = speakers_of(out)
    assert set(segments["voices"]) == {"S1", "S2"} and len(set(segments["voices"].values())) == 2
    # Each phrase goes to the speaker who says most of it: all but a sliver at a turn change (a
    # 0.12 s word cut there can go either way, and does on another CPU), by the share of speech.
    right = total = 0.0
    for p in segments["phrases"]:
        overlap = {}
        for a, b, s in conv.turns:
            overlap[s] = overlap.get(s, 0) + max(0.0, min(b, p["end"]) - max(a, p["start"]))
        ok = p["speaker"] == f"S{max(overlap, key=overlap.get) + 1}"
        assert ok or p["end"] - p["start"] < 0.5, p
        right, total = right + ok * (p["end"] - p["start"]), total + p["end"] - p["start"]
    assert right / total >= 0.95, (right, total)
    # the dubbed voices differ per speaker: each phrase's speech as the TTS made it
    speech = out.with_name("talk.es.work") / "speech"
    embeds = {}
    for p in segments["phrases"]:
        take = sorted(speech.glob(f"{p['id']:04d}-*.wav"))[0]
        audio, rate = sf.read(take, dtype="float32")
        import soxr

        embeds.setdefault(p["speaker"], []).append(encoder.embed(soxr.resample(audio, rate, SAMPLE_RATE)))
    one, two = np.array(embeds["S1"]), np.array(embeds["S2"])
    within = np.mean([(one @ one.T)[np.triu_indices(len(one), 1)].mean(), (two @ two.T)[np.triu_indices(len(two), 1)].mean()])
    across = (one @ two.T).mean()
    assert within - across > 0.1, (within, across)
    known = json.loads(speakers_file.read_text())["speakers"]
    assert set(known) == {"S1", "S2"} and {k: v["voice"] for k, v in known.items()} == segments["voices"]


def test_a_voice_edit_respeaks_only_that_speakers_phrases(conversation_dub, tmp_path):
    _, src, out, _ = conversation_dub
    segments = speakers_of(out)
    speech = out.with_name("talk.es.work") / "speech"
    before = {f.name for f in speech.glob("*.wav")}
    segments["voices"]["S2"] = "jf_nezumi" if segments["voices"]["S2"] != "jf_nezumi" else "jf_tebukuro"
    out.with_name(out.stem + ".segments.json").write_text(json.dumps(segments))
    proc = s3tvr("dub", src, "--from", "en", "--to", "es", *APERTIUM, "-o", out, "--background", "duck", "--resume", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    new = {f.name for f in speech.glob("*.wav")} - before
    respoken = {int(name[:4]) for name in new}
    assert respoken == {p["id"] for p in segments["phrases"] if p["speaker"] == "S2"}
    assert json.loads(out.with_name("talk.es.sync.json").read_text())["speakers"]["voices"]["S2"]["voice"] == segments["voices"]["S2"]


def test_the_speakers_file_keeps_names_and_voices_across_files(conversation_dub, tmp_path):
    """Another file of the catalogue: the same readers, another order, one renamed in the file."""
    _, _, _, speakers_file = conversation_dub
    catalogue = tmp_path / "show.speakers.json"
    known = json.loads(speakers_file.read_text())
    known["speakers"]["Ana"] = known["speakers"].pop("S1")
    catalogue.write_text(json.dumps(known))
    conv = build([READERS["ljspeech"][2:], READERS["fleurs-en"][1:]], seed=5, max_turns=6)
    src = tmp_path / "next.wav"
    sf.write(src, conv.audio, SAMPLE_RATE)
    out = tmp_path / "next.es.wav"
    proc = s3tvr("dub", src, "--from", "en", "--to", "es", *APERTIUM, "-o", out, "--subtitles-only", "--subtitle-speakers",
                 "--speakers-file", catalogue, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    voices = speakers_of(out)["voices"]
    assert set(voices) == {"Ana", "S2"} and voices == {k: v["voice"] for k, v in known["speakers"].items()}
    first_speaker = speakers_of(out)["phrases"][0]["speaker"]
    assert out.with_name("next.es.es.srt").read_text().split("\n")[2].startswith(f"{first_speaker}: ")
    assert set(json.loads(catalogue.read_text())["speakers"]) == {"Ana", "S2"}


def test_speakers_errors_are_one_line(tmp_path):
    from conftest import one_line_error

    src = tmp_path / "talk.wav"
    shutil.copy(DATA / "fleurs-en-003.ogg", tmp_path / "talk.ogg")
    src = tmp_path / "talk.ogg"
    proc = s3tvr("dub", src, "--from", "en", "--to", "es", *APERTIUM, "-o", tmp_path / "o.wav", "--speakers", "0")
    one_line_error(proc, "--speakers", "1 to 20")
    proc = s3tvr("dub", src, "--from", "en", "--to", "es", *APERTIUM, "-o", tmp_path / "o.wav", "--speakers", "2", "--resume")
    one_line_error(proc, "--speakers", "--resume")
    bad = tmp_path / "bad.json"
    bad.write_text('{"speakers": {"Ana": {"print": [1, 2]}}}')
    proc = s3tvr("dub", src, "--from", "en", "--to", "es", *APERTIUM, "-o", tmp_path / "o.wav", "--speakers-file", bad)
    one_line_error(proc, "bad.json: speakers.Ana.print: holds 2 items, not exactly 256", "--speakers-file")
    assert not list(tmp_path.glob("o.*"))
