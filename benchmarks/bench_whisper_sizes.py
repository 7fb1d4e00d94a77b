"""Whisper base, small and large-v3-turbo at full size: what one simultaneous pass costs on this
machine, and whether each keeps simultaneous mode's pace (the criterion of ``asr.model: auto`` and
of mode auto: simultaneous.auto_mode).

No real weights reach this machine, but a pass's time depends on the architecture, the precision,
the encoder window and the number of tokens written, not on the weights' values. Each model is
built at its published configuration with random weights and converted to CTranslate2 int8
(benchmarks/gpu/stack_models.py: build_whisper), then run as s3tvr's ``hypothesis`` runs it:
faster-whisper, the encoder window cut to the audio + 2 s, greedy, no temperature fallback. The
audio is the calibration clip (10 s of LJSpeech, what ``auto`` times) cut to 2, 5 and 10 s. Random weights stop
at random, so every pass is forced to write as many tokens a second as the real bundled Whisper
base writes on the whole clip (36 tokens for 10 s here: 3.6 a second), by
suppressing the end of text and every special token and raising max_new_tokens until a pass writes
that count (forcing_cap; the table says how many each pass wrote); Whisper's timestamp tokens are left out (without_timestamps),
and so are word timestamps: after aligning the words faster-whisper starts the next decode at the
last word's end, which a random model puts anywhere, so one pass would become several. The random
models' figures are therefore one encode and one decode of the forced tokens, without the alignment;
the real bundled base runs unforced (capped as s3tvr caps a pass: token_cap) with and without word
timestamps, which gives the alignment's share and checks that random base costs what real base does.

    .venv/bin/python benchmarks/bench_whisper_sizes.py [--work eval-out/whisper-sizes] [--repeats 3] [--out sizes.json]

The models are built once into --work (about 2.3 GB in all; large-v3-turbo takes a few minutes and
~4 GB of memory) and reused. Also printed: this machine's full-window pass of bundled base over 10 s
of the shared Spanish talk (bench_window.reference_pass_s), to scale the figures to another machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import shared_data

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "gpu"))  # stack_models
sys.path.insert(0, str(HERE.parent))

import bench_window  # noqa: E402
import stack_models  # noqa: E402

from s3tvr.audio import SAMPLE_RATE  # noqa: E402
from s3tvr.audio.decode import load_audio  # noqa: E402
from s3tvr.backends.asr import CALIBRATION_CLIP  # noqa: E402
from s3tvr.backends.asr.faster_whisper import load_model, token_cap, with_window  # noqa: E402
from s3tvr.config import SimultaneousConfig  # noqa: E402
from s3tvr.live.simultaneous import auto_mode  # noqa: E402

SECONDS = (2, 5, 10)
OPTIONS = dict(language="en", task="transcribe", beam_size=1, temperature=0.0, condition_on_previous_text=False,
               without_timestamps=True, vad_filter=False)


def built(name: str, work: Path) -> Path:
    """The CTranslate2 folder of random-weight Whisper ``name`` under ``work``, built in a child process when missing
    (the transformers model it converts is freed with the child)."""
    folder = work / name
    if not (folder / "model.bin").is_file():
        child = multiprocessing.get_context("spawn").Process(target=stack_models.build_whisper, args=(name, work))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"building Whisper {name} failed (exit {child.exitcode})")
    return folder


def special_tokens(folder: Path) -> list[int]:
    """The end of text and every token after it in ``folder``'s vocabulary (language, task, timestamp and padding
    tokens), with faster-whisper's -1 (its non-speech symbols): suppressed, a random model writes text tokens only."""
    vocabulary = json.loads((folder / "vocabulary.json").read_text())
    return [-1, *range(vocabulary.index("<|endoftext|>"), len(vocabulary))]


def one_pass(model, audio, cap: int, suppress: list[int], words: bool) -> tuple[float, int]:
    """(seconds, text tokens written) of one windowed pass writing at most ``cap`` new tokens."""
    start = time.perf_counter()
    segments = list(with_window(model, audio).transcribe(audio, max_new_tokens=cap, suppress_tokens=suppress,
                                                         word_timestamps=words, **OPTIONS)[0])
    return time.perf_counter() - start, sum(len(s.tokens) for s in segments)


def forcing_cap(model, audio, tokens: int, suppress: list[int]) -> int:
    """The max_new_tokens that makes a random model write ``tokens``: CTranslate2 stops short of
    max_new_tokens (about half of it here), so it is raised by what was missing until the pass writes them."""
    cap = tokens
    for _ in range(6):
        written = one_pass(model, audio, cap, suppress, False)[1]
        if written >= tokens:
            break
        cap += tokens - written
    return cap


def median_pass(model, audio, repeats: int, cap: int, suppress: list[int], words: bool = False) -> tuple[float, int]:
    """(median seconds, tokens written) of ``repeats`` passes after a warm-up."""
    one_pass(model, audio, cap, suppress, words)
    runs = [one_pass(model, audio, cap, suppress, words) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), runs[0][1]


def measure(work: Path, repeats: int) -> dict:
    clip = load_audio(CALIBRATION_CLIP, SAMPLE_RATE)
    clips = {s: clip[: s * SAMPLE_RATE] for s in SECONDS}
    real = load_model("bundled:base", device="cpu", compute_type="int8")
    rows = {f"base, real{', words' * words}": {s: median_pass(real, clips[s], repeats, token_cap(clips[s]), [-1], words)
                                                for s in SECONDS} for words in (True, False)}
    per_s = rows["base, real"][max(SECONDS)][1] / max(SECONDS)
    tokens = {s: max(1, round(per_s * s)) for s in SECONDS}
    del real
    for name in stack_models.WHISPER:
        folder = built(name, work)
        model, suppress = load_model(str(folder), device="cpu", compute_type="int8"), special_tokens(folder)
        rows[name] = {s: median_pass(model, clips[s], repeats, forcing_cap(model, clips[s], tokens[s], suppress), suppress)
                      for s in SECONDS}
        del model
    return {"tokens": tokens, "rows": rows}


def report(result: dict) -> None:
    config = SimultaneousConfig()
    print(f"\nOne pass, seconds (median) / text tokens written; random models forced to {result['tokens']}")
    print(f"{'model':<22}" + "".join(f"{str(s) + ' s of speech':>18}" for s in SECONDS) + "  keeps pace (simultaneous.auto_mode)")
    for name, row in result["rows"].items():
        mode, why = auto_mode(row[max(SECONDS)][0], 1, config)
        verdict = "yes" if mode == "simultaneous" else "no"
        print(f"{name:<22}" + "".join(f"{row[s][0]:>10.2f} s / {row[s][1]:>3}" for s in SECONDS) + f"  {verdict}: {why}")
    print(f"\nthis machine's full-window pass (bundled base, 10 s, bench_window.reference_pass_s): "
          f"{result['reference_pass_s']:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("eval-out/whisper-sizes"), help="built models (reused)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    shared_data.add_argument(parser)
    args = parser.parse_args()
    shared_data.use(args.data)
    result = measure(args.work, args.repeats)
    result["reference_pass_s"] = bench_window.reference_pass_s()
    report(result)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
