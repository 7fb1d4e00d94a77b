"""Text translation on FLORES-200 devtest, both directions: Apertium against the LLM translator
(with and without the two earlier sentences as context), one run. Prints BLEU and chrF with 95 %
confidence intervals, each system against Apertium by paired bootstrap resampling (sacrebleu's,
1,000 resamples: p < 0.05 says the difference is not noise), and the seconds each sentence took
(p50, p90); writes every figure and every output to eval-out/mt.json.

    python benchmarks/bench_mt.py [--n 200] [--start 0] [--pairs es-en,en-es] [--systems apertium,llm,llm-alone]
                                  [--data DIR]   # the shared data folder, or its FLORES devtest folder

The sample is ``--n`` consecutive lines from ``--start``: FLORES devtest runs article by article,
so each sentence's context is the sentences before it in its article (the first of the sample has none).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import shared_data

from s3tvr.backends import registry
from s3tvr.backends.kinds import MtContext
from s3tvr.config import BackendSection

FILES = {"en": "eng_Latn.devtest", "es": "spa_Latn.devtest", "ru": "rus_Cyrl.devtest"}
# name -> (backend section, whether the earlier sentences are given)
SYSTEMS = {"apertium": (BackendSection("apertium"), False),
           "llm": (BackendSection("llm", {"pace_s": 0, "context_sentences": 2}), True),
           "llm-alone": (BackendSection("llm", {"pace_s": 0, "context_sentences": 0}), False)}


def flores(langs: tuple[str, ...], start: int, n: int, folder: Path | None = None) -> dict[str, list[str]]:
    """``n`` aligned FLORES devtest lines from ``start``, per language (``folder``: the shared data's)."""
    folder = folder or shared_data.flores()
    return {lang: (folder / FILES[lang]).read_text(encoding="utf-8").splitlines()[start:start + n] for lang in langs}


def translate_all(system: str, src: str, tgt: str, sources: list[str]) -> tuple[list[str], list[float]]:
    section, in_context = SYSTEMS[system]
    mt = registry.create("mt", section, src_lang=src, tgt_lang=tgt)
    mt.setup()
    outs, seconds, context = [], [], MtContext()
    try:
        for line in sources:
            t0 = time.perf_counter()
            out = mt.translate_text(line, context)
            seconds.append(time.perf_counter() - t0)
            outs.append(out)
            if in_context:
                context = context.then(line, out, mt.context_sentences)
    finally:
        mt.cleanup()
    return outs, seconds


def significance(named: dict[str, list[str]], refs: list[str]) -> dict[str, dict]:
    """BLEU and chrF of each system with its 95 % interval and, past the first (the baseline), the p-value of
    its difference from it (paired bootstrap)."""
    from sacrebleu.metrics import BLEU, CHRF
    from sacrebleu.significance import PairedTest

    test = PairedTest(list(named.items()), {"BLEU": BLEU(), "chrF": CHRF()}, [refs], test_type="bs", n_samples=1000)
    _, scores = test()
    out: dict[str, dict] = {}
    for metric, results in scores.items():
        if metric == "System":
            continue
        for name, r in zip(scores["System"], results):
            out.setdefault(name, {})[metric.rstrip("2")] = {  # sacrebleu names chrF "chrF2" (its beta)
                "score": round(float(r.score), 2), "ci95": round(float(r.ci), 2) if r.ci is not None else None,
                "p_vs_baseline": None if r.p_value is None else round(r.p_value, 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--pairs", default="es-en,en-es")
    ap.add_argument("--systems", default="apertium,llm,llm-alone", help=f"the first is the baseline; of {', '.join(SYSTEMS)}")
    ap.add_argument("--data", type=Path, metavar="DIR", help="the shared data folder, or its FLORES-200 devtest folder "
                    f"(default: $S3TVR_DATA, else {shared_data.DEFAULT})")
    ap.add_argument("--out", type=Path, default=Path("eval-out"))
    args = ap.parse_args()
    own = args.data is not None and (args.data / FILES["en"]).is_file()  # the FLORES folder itself
    folder = args.data if own else shared_data.use(args.data) / "text" / "flores200_devtest"
    systems = args.systems.split(",")
    results = []
    for pair in args.pairs.split(","):
        src, tgt = pair.split("-")
        lines = flores((src, tgt), args.start, args.n, folder)
        outputs, times = {}, {}
        for system in systems:
            outputs[system], times[system] = translate_all(system, src, tgt, lines[src])
        scores = significance(outputs, lines[tgt])
        results.append({"pair": pair, "n": len(lines[src]), "scores": scores,
                        "seconds": {s: {"p50": statistics.median(t), "p90": sorted(t)[int(0.9 * (len(t) - 1))]} for s, t in times.items()},
                        "outputs": outputs})
    print(f"\nFLORES-200 devtest lines {args.start}-{args.start + args.n - 1}; machine: {os.cpu_count()} cores")
    print(f"{'pair':<7}{'system':<11}{'BLEU (95% CI)':>18}{'p':>8}{'chrF (95% CI)':>18}{'p':>8}{'s/sentence p50':>16}{'p90':>7}")
    for r in results:
        for s in systems:
            b, c, t = r["scores"][s]["BLEU"], r["scores"][s]["chrF"], r["seconds"][s]
            print(f"{r['pair']:<7}{s:<11}{b['score']:>10.1f} ± {b['ci95'] or 0:<5.1f}{p_text(b):>8}{c['score']:>10.1f} ± "
                  f"{c['ci95'] or 0:<5.1f}{p_text(c):>8}{t['p50']:>15.2f}s{t['p90']:>6.2f}s")
    print(f"(p: paired bootstrap against {systems[0]}, 1,000 resamples)")
    args.out.mkdir(exist_ok=True)
    (args.out / "mt.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))


def p_text(metric: dict) -> str:
    return "-" if metric["p_vs_baseline"] is None else f"{metric['p_vs_baseline']:.3f}"


if __name__ == "__main__":
    main()
