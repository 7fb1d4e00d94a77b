"""The Silero segmenter on real recordings: counts, boundaries, quiet speech, noise, long talkers."""

import json
import time

import numpy as np
import pytest

from s3tvr.audio.decode import load_audio
from s3tvr.config import VadConfig
from s3tvr.live.messages import Block
from s3tvr.live.segmenter import Segmenter


def segments(audio, block=512, **kw):
    seg = Segmenter(VadConfig(**kw), "en", "es")
    seg.setup()
    out = []
    for i in range(0, len(audio), block):
        out += seg.push(Block(audio[i:i + block], time.monotonic()))
    return out + seg.flush()


def spans(segs):
    return [(s.utt.seg_start_s, s.utt.seg_end_s) for s in segs]


def test_narration_splits_into_its_nine_sentences(data):
    # The narration's own project transcribes it as 9 sentences separated by pauses.
    expected = json.loads((data / "realtimestt_asr-reference.expected_sentences.json").read_text())["utterances"]
    segs = segments(load_audio(data / "realtimestt_asr-reference.wav"))
    assert len(segs) == len(expected) == 9
    assert [s.utt.utt_id for s in segs] == list(range(9))
    for (a0, a1), (b0, b1) in zip(spans(segs), spans(segs)[1:]):
        assert a0 < a1 <= b0 < b1  # ordered, never overlapping


def test_video_utterance_boundaries_match_the_reference_within_half_a_second(data):
    # Timings from the open-dubbing project's own test (its tolerance: 0.5 s). Our segmenter
    # splits the first utterance ("Good morning, | my name is ...") at its 0.4 s comma pause.
    ref = json.loads((data / "open-dubbing_englishvideo.expected.json").read_text())["utterances"]
    got = spans(segments(load_audio(data / "open-dubbing_englishvideo.mp4"), preroll_ms=0))
    for r in ref:
        starts = [abs(a - r["start"]) for a, _ in got]
        ends = [abs(b - r["end"]) for _, b in got]
        assert min(starts) < 0.5 and min(ends) < 0.5, (r, got)
    covered = sum(b - a for a, b in got)
    assert covered == pytest.approx(sum(r["end"] - r["start"] for r in ref), abs=1.0)


def test_preroll_keeps_audio_before_the_first_detected_speech(data):
    audio = load_audio(data / "open-dubbing_englishvideo.mp4")
    plain = segments(audio, preroll_ms=0)[0]
    padded = segments(audio, preroll_ms=300)[0]
    assert plain.utt.seg_start_s - padded.utt.seg_start_s == pytest.approx(0.3, abs=0.033)
    assert len(padded.audio) - len(plain.audio) == pytest.approx(0.3 * 16000, abs=512)


@pytest.mark.parametrize("clip", ["fleurs-en-003.ogg", "fleurs-en-004.ogg"])
def test_quiet_recordings_are_found_and_normalised(data, clip):
    audio = load_audio(data / clip)
    assert 20 * np.log10(np.abs(audio).max()) < -44  # recorded very quietly
    segs = segments(audio)
    assert len(segs) == 1
    seg = segs[0]
    assert seg.utt.seg_end_s - seg.utt.seg_start_s > 0.8 * len(audio) / 16000 - 0.6  # most of the clip
    assert np.abs(seg.audio).max() == pytest.approx(0.9, abs=0.01)  # peak-normalised for ASR


def test_noise_alone_and_silence_yield_nothing(data):
    noise = load_audio(data / "noise_dishes_20s.wav")
    assert segments(noise) == []
    assert segments(np.zeros(16000 * 10, np.float32)) == []
    rng = np.random.default_rng(0)
    assert segments((rng.standard_normal(16000 * 10) * 1e-4).astype(np.float32)) == []  # faint hiss


def test_a_speaker_who_never_pauses_is_split_at_quiet_points(data):
    audio = load_audio(data / "realtimestt_asr-reference.wav")
    normal = spans(segments(audio))
    split = spans(segments(audio, max_segment_s=4.0))
    assert len(split) > len(normal)
    assert all(b - a <= 4.0 + 0.05 for a, b in split)
    # Forced splits lose no audio: consecutive pieces of one sentence touch.
    speech = sum(b - a for a, b in split)
    assert speech == pytest.approx(sum(b - a for a, b in normal), rel=0.1)


def test_block_size_does_not_change_the_segments(data):
    # A microphone at 44.1 kHz resampled to 16 kHz delivers odd block sizes.
    audio = load_audio(data / "open-dubbing_englishvideo.mp4")
    assert spans(segments(audio, block=441)) == spans(segments(audio, block=512))


def test_noise_profile_comes_from_non_speech_before_the_utterance(data):
    segs = segments(load_audio(data / "realtimestt_asr-reference.wav"))
    assert len(segs[2].noise) > 0.25 * 16000
    assert len(segs[2].noise) <= 2.0 * 16000
