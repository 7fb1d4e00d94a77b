"""The cost of captions' source line into English: the transcript pass (s3tvr/backends/asr/faster_whisper.py,
``asr.transcript=true``).

Whisper's translate task (``--set asr.task=translate --set mt=none``) gives English text and no
transcript; captions that show the speaker's words too need a second pass over each utterance, the
same Whisper with the transcribe task. This prints, on this machine, with Whisper base (int8, all
cores) as s3tvr runs it, for each Spanish FLEURS clip of the shared data (one utterance each): the
translate pass and the transcript pass, wall seconds and CPU seconds (all threads: the share of the
machine it takes), medians of --repeats, each against the clip's length; then their totals, and
the full-window pass over 10 s of speech (bench_window.py's reference_pass_s) that scales these
times to another machine.

    .venv/bin/python benchmarks/bench_captions.py [--repeats 3] [--out eval-out/captions.json] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import shared_data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s3tvr.audio.decode import load_audio  # noqa: E402
from s3tvr.backends.asr.faster_whisper import Backend, Config  # noqa: E402

RATE = 16000


def timed(call, repeats: int) -> tuple[str, float, float]:
    """``call()``'s text, and its median wall and CPU seconds over ``repeats`` (after one warm-up)."""
    text = call()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return text, statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    parser.add_argument("--no-reference", action="store_true", help="skip the full-window reference pass")
    shared_data.add_argument(parser)
    args = parser.parse_args()
    shared_data.use(args.data)
    fleurs = shared_data.speech("fleurs")
    clips = sorted(fleurs.glob("fleurs-es-*.ogg"))
    asr = Backend(Config(model="bundled:base", task="translate", transcript=True), "es", "en")
    asr.setup()
    rows = []
    print(f"{'clip':<18}{'audio s':>8}{'translate s':>12}{'transcript s':>13}{'cpu s':>7}{'x audio':>8}  transcript")
    for clip in clips:
        audio = load_audio(clip, RATE)
        seconds = len(audio) / RATE
        _, t_wall, t_cpu = timed(lambda a=audio: asr.transcribe(a, "es"), args.repeats)
        text, s_wall, s_cpu = timed(lambda a=audio: asr.source_text(a, "es"), args.repeats)
        rows.append({"clip": clip.name, "audio_s": round(seconds, 2), "translate_s": round(t_wall, 3), "translate_cpu_s": round(t_cpu, 3),
                     "transcript_s": round(s_wall, 3), "transcript_cpu_s": round(s_cpu, 3), "transcript": text})
        print(f"{clip.name:<18}{seconds:>8.1f}{t_wall:>12.2f}{s_wall:>13.2f}{s_cpu:>7.2f}{s_wall / seconds:>8.3f}  {text[:60]}")
    audio_s = sum(r["audio_s"] for r in rows)
    total = {key: round(sum(r[key] for r in rows), 3) for key in ("translate_s", "translate_cpu_s", "transcript_s", "transcript_cpu_s")}
    summary = {"clips": len(rows), "audio_s": round(audio_s, 2), **total,
               "transcript_per_utterance_s": round(total["transcript_s"] / len(rows), 3),
               # the median too: on a shared machine one slow clip (another's load) moves the mean
               "transcript_median_s": round(statistics.median(r["transcript_s"] for r in rows), 3),
               "translate_median_s": round(statistics.median(r["translate_s"] for r in rows), 3),
               "transcript_x_audio": round(total["transcript_s"] / audio_s, 4),
               "transcript_x_translate": round(total["transcript_s"] / total["translate_s"], 3),
               "transcript_cpu_per_wall": round(total["transcript_cpu_s"] / total["transcript_s"], 2)}
    print(f"\n{len(rows)} utterances, {audio_s:.1f} s of speech: the transcript pass {summary['transcript_per_utterance_s']:.2f} s "
          f"an utterance, median {summary['transcript_median_s']:.2f} s against the translate pass's "
          f"{summary['translate_median_s']:.2f} s ({summary['transcript_x_audio']:.3f}x the audio, "
          f"{summary['transcript_x_translate']:.2f}x the translate pass; {summary['transcript_cpu_per_wall']:.1f} CPU s a second)")
    if not args.no_reference:
        from bench_window import reference_pass_s

        summary["reference_pass_s"] = round(reference_pass_s(), 3)
        print(f"this machine's full-window pass over 10 s of speech (bench_window.py reference_pass_s): "
              f"{summary['reference_pass_s']:.2f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
