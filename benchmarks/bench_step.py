"""How often should simultaneous passes run, and from how much speech on? Simultaneous mode with
each ``simultaneous.step_s`` × ``simultaneous.min_audio_s`` on the shared Spanish FLEURS clips
(``s3tvr eval``: quality and the field's latency) and the shared 60 s Spanish talk
(``bench_lag.run``: latency, CPU seconds per second of speech), at real-time pace, offline profile.

    .venv/bin/python benchmarks/bench_step.py [--steps 0.5 1.0] [--starts 1.0 2.0] [--out eval-out/step] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_lag import run, set_args  # noqa: E402
from bench_window import reference_pass_s  # noqa: E402
from shared_data import add_argument, speech, talk, use  # noqa: E402


def fleurs(sets: tuple[str, ...], out: Path) -> dict:
    subprocess.run([str(ROOT / ".venv/bin/s3tvr"), "-q", "eval", "--data", str(speech("fleurs")), "--pair", "es-en",
                    "--out", str(out), *set_args(sets)], check=True, stdout=subprocess.DEVNULL)
    result = json.loads((out / "eval.json").read_text())
    field = result["latency"]["field"]
    return {"asr_bleu": round(result["asr_bleu"]["bleu"], 1), "text_bleu": round(result["text_bleu"]["bleu"], 1),
            **{f"{name}_p50": round(m["p50"], 2) for name, m in field.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument("--starts", type=float, nargs="+", default=[1.0, 2.0])
    ap.add_argument("--out", type=Path, default=ROOT / "eval-out" / "step")
    add_argument(ap)
    args = ap.parse_args()
    use(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    reference = reference_pass_s()
    print(f"this machine's full-window Whisper base pass over 10 s: {reference:.2f} s", flush=True)
    rows = []
    for step in args.steps:
        for start in args.starts:
            sets = (f"simultaneous.step_s={step}", f"simultaneous.min_audio_s={start}")
            tag = f"-step{step:g}-start{start:g}"
            row = {"step_s": step, "min_audio_s": start}
            row.update({f"fleurs {k}": v for k, v in fleurs(("simultaneous.mode=simultaneous", *sets), args.out / f"fleurs{tag}").items()})
            talk_row = run("simultaneous", talk(), args.out, sets, tag)
            row.update({f"talk {k}": talk_row[k] for k in ("StartOffset_p50", "EndOffset_p50", "first audio_p50", "LAAL_p50", "cpu_rtf")})
            rows.append(row)
            print(json.dumps(row), flush=True)
    keys = list(rows[0])
    print("  ".join(keys))
    for row in rows:
        print("  ".join(str(row[k]) for k in keys))
    (args.out / "step.json").write_text(json.dumps({"full_window_pass_s": reference, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
