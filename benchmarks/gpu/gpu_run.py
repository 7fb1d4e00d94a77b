"""The stack measured on a lent GPU in one command, within one lease; rehearsed on the CPU with --tiny.

    bash scripts/gpu_run.sh                                   # on the device: installs gpu-kit/, runs this
    python benchmarks/gpu/gpu_run.py --out DIR [--tiny] [--device cpu|cuda] [--fail STEP]

Steps, each in a process of its own under its own time limit, in order of what a lease most
needs: the environment; the full-size random-weight models built (benchmarks/gpu/stack_models.py; or the
tests' tiny ones with --tiny); each model's load time, peak memory, compute and non-finite outputs
(benchmarks/bench_stack.py's measures, with forward hooks) in bfloat16; the end of speech -> first audio chain
en->es and es->en through real Sessions; how many concurrent sessions one GPU holds at <= 2x one
session's first audio; the measures again in float16; XTTS with DeepSpeed's kernels. The whole run
has a budget (--budget-s, 450 s: one 10-minute device call with the kit's install and a margin).
A step past its limit is killed and recorded, a failed one too, and the run goes on; the JSON is
rewritten after every step, so a lease that ends early still returns what was measured. Random weights stop at random, so decoding is
forced to fixed lengths (``force_lengths``: MT to 25 words' tokens, XTTS's GPT to 3 s of speech).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent  # benchmarks/gpu: this and stack_models
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "benchmarks"))  # bench_stack
sys.path.insert(0, str(ROOT))

import bench_stack  # noqa: E402
import stack_models  # noqa: E402

log = logging.getLogger("s3tvr.gpu_run")

FULL = {"asr-en": "parakeet-ctc-1.1b", "asr-es": "fastconformer-es", "mt": "nllb-1.3b", "tts": "xtts-v2"}
TINY = {"asr-en": "nemo-ctc-tiny", "asr-es": "nemo-ctc-tiny", "mt": "nllb-tiny", "tts": "xtts-tiny"}
NEEDS = {"asr": ["nemo"], "mt": ["transformers"], "tts": ["TTS"]}  # modules a model's kind imports
SESSION_NEEDS = ["nemo", "transformers", "TTS", "av", "silero_vad"]
MT_TOKENS = 25  # a FLORES sentence in NLLB tokens (bench_stack.MT_TOKENS[0])
TTS_SECONDS = 3  # of speech from XTTS's GPT (bench_stack.TTS_SECONDS[0])
CLIP_S = {False: 5.0, True: 2.5}  # the sessions' input (full, --tiny): this much of a FLEURS clip, at real-time pace
KIT = Path(os.environ.get("GPU_KIT", ROOT / "gpu-kit"))  # scripts/gpu_run.sh says where the kit is


# -- the plan -------------------------------------------------------------------------------------

@dataclass
class Step:
    name: str
    limit_s: float  # killed past this
    action: str  # env | build | measure | chain | concurrency | deepspeed
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepResult:
    name: str
    status: str  # ok | failed | timeout | skipped
    seconds: float
    figures: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def plan(args: argparse.Namespace) -> list[Step]:
    """The steps in order of need: a lease cut short loses the least useful ones. Limits sized for
    the full-size models on an H200 (measured there: none yet; see the README), scaled by --tiny."""
    s = 1.0 if not args.tiny else 0.5
    models = TINY if args.tiny else FULL
    unique = list(dict.fromkeys(models.values()))
    steps = [Step("env", 60, "env")]
    if args.tiny:
        steps.append(Step("build-tiny", 240, "build", {"model": "tiny"}))
    else:
        limits = {"parakeet-ctc-1.1b": 150, "fastconformer-es": 60, "nllb-1.3b": 120, "xtts-v2": 60}
        steps += [Step(f"build-{m}", limits[m], "build", {"model": m}) for m in unique]
    first, *others = args.dtypes  # bfloat16 first: what dtype auto picks on an H200
    steps += [Step(f"measure-{m}-{first}", 90 * s + 60 * args.tiny, "measure", {"model": m, "dtype": first}) for m in unique]
    steps += [Step(f"chain-{pair}", 120, "chain", {"pair": pair, "dtype": first}) for pair in ("en-es", "es-en")]
    steps.append(Step("concurrency-en-es", 180, "concurrency", {"pair": "en-es", "dtype": first}))
    steps += [Step(f"measure-{m}-{d}", 90 * s + 60 * args.tiny, "measure", {"model": m, "dtype": d})
              for d in others for m in unique]
    steps.append(Step("deepspeed-xtts", 120, "deepspeed", {"model": models["tts"], "dtype": first}))
    return steps


# -- the parent: each step in a child, under its limit ---------------------------------------------

def run_all(args: argparse.Namespace) -> dict:
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report: dict[str, Any] = {"tiny": args.tiny, "device": args.device, "dtypes": args.dtypes, "budget_s": args.budget_s,
                              "steps": []}
    for step in plan(args):
        budget = args.budget_s * args.limit_scale
        left = budget - (time.monotonic() - started)
        if left < 10:
            result = StepResult(step.name, "skipped", 0.0, reason=f"the run's {budget:.0f} s budget is spent")
        else:
            result = run_step(step, min(step.limit_s * args.limit_scale, left), args)
        log.info("%s: %s in %.1f s %s", step.name, result.status, result.seconds, result.reason or "")
        report["steps"].append(dataclasses.asdict(result))
        report["wall_s"] = round(time.monotonic() - started, 1)
        (args.out / "gpu_run.json").write_text(json.dumps(report, indent=1))  # after each step: a cut lease keeps it
    return report


def run_step(step: Step, limit_s: float, args: argparse.Namespace) -> StepResult:
    """``step`` in a child process of its own session (so that a kill takes its children too)."""
    out = args.work / "steps" / f"{step.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(dataclasses.asdict(step)),
           "--child-out", str(out), *child_flags(args)]
    t0 = time.monotonic()
    with open(args.out / "gpu_run.log", "ab") as logfile:
        logfile.write(f"\n===== {step.name} (limit {limit_s:.0f} s)\n".encode())
        logfile.flush()
        proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    seconds = round(time.monotonic() - t0, 1)
    got = json.loads(out.read_text()) if out.is_file() else {}
    if code is None:
        return StepResult(step.name, "timeout", seconds, got.get("figures", {}), f"past its {limit_s:.0f} s limit: abandoned")
    if code != 0 or got.get("status") not in ("ok", "skipped"):
        return StepResult(step.name, "failed", seconds, got.get("figures", {}),
                          got.get("reason") or f"exit {code} (gpu_run.log has its output)")
    return StepResult(step.name, got["status"], seconds, got.get("figures", {}), got.get("reason", ""))


def child_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--device", args.device, "--work", str(args.work), "--repeats", str(args.repeats),
             "--levels", *map(str, args.levels), "--dtypes", *args.dtypes, "--out", str(args.out)]
    return (flags + (["--tiny"] if args.tiny else []) + [f for name in args.fail for f in ("--fail", name)]
            + [f for name in args.hang for f in ("--hang", name)])


# -- the child: one step --------------------------------------------------------------------------

class Skip(Exception):
    """A step that cannot run here, and why (recorded as skipped, not failed)."""


class Output:
    """A step's result file, rewritten as figures come (a step killed at its limit keeps them)."""

    def __init__(self, path: Path):
        self.path = path
        self.figures: dict[str, Any] = {}

    def put(self, status: str = "running", reason: str = "", **figures: Any) -> None:
        self.figures.update(figures)
        self.path.write_text(json.dumps({"status": status, "reason": reason, "figures": self.figures}, default=str))


def child(step: Step, args: argparse.Namespace, out: Output) -> None:
    if step.name in args.fail:  # the rehearsal's proof that a failed step is recorded and the run goes on
        raise RuntimeError(f"{step.name} failed on purpose (--fail {step.name})")
    if step.name in args.hang:  # and that a step that never ends is killed at its limit
        threading.Event().wait()
    actions: dict[str, Callable[[Step, argparse.Namespace, Output], None]] = {
        "env": step_env, "build": step_build, "measure": step_measure, "chain": step_chain,
        "concurrency": step_concurrency, "deepspeed": step_deepspeed}
    actions[step.action](step, args, out)


def need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        kit = (KIT / "GROUPS").read_text().split() if (KIT / "GROUPS").is_file() else []
        raise Skip(f"{', '.join(missing)} not installed here (gpu-kit holds: {', '.join(kit) or 'nothing'}; "
                   f"scripts/gpu_wheels.sh says what did not fit)")


def step_env(step: Step, args: argparse.Namespace, out: Output) -> None:
    import torch

    figures = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.cuda.is_available(),
               "modules": {m: importlib.util.find_spec(m) is not None
                           for m in ("nemo", "TTS", "transformers", "av", "silero_vad", "deepspeed")}}
    if torch.cuda.is_available():
        figures["gpu"] = torch.cuda.get_device_name(0)
        figures["gpu_mb"] = torch.cuda.get_device_properties(0).total_memory / 2**20
    import transformers

    figures["transformers"] = transformers.__version__
    out.put(**figures)


def built(args: argparse.Namespace) -> dict[str, str]:
    """Model name -> saved path, of what the build steps made."""
    index = args.work / "built.json"
    return json.loads(index.read_text()) if index.is_file() else {}


def record_built(args: argparse.Namespace, paths: dict[str, str]) -> None:
    (args.work / "built.json").write_text(json.dumps({**built(args), **paths}))


def step_build(step: Step, args: argparse.Namespace, out: Output) -> None:
    name = step.params["model"]
    if name == "tiny":
        need("nemo", "TTS")
        out.put(**{k: str(v) for k, v in build_tiny(args.work / "tiny").items()})
        record_built(args, out.figures)
        return
    need(*NEEDS[stack_models.KINDS[name]])
    if not (stack_models.FLORES / "eng_Latn.devtest").is_file():  # beside the checkout here; in the kit there
        os.environ["S3TVR_FLORES"] = str(KIT.resolve() / "flores")  # the builder runs in a spawned process
    t0 = time.perf_counter()
    path = bench_stack.build(name, args.work)
    record_built(args, {name: str(path)})
    out.put(build_s=round(time.perf_counter() - t0, 1), path=str(path))


def build_tiny(folder: Path) -> dict[str, Path]:
    """The tests' tiny models (tests/tiny_models.py), with XTTS's GPT allowed v2's 605 audio tokens."""
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import build_nemo_ctc, build_nllb, build_xtts

    torch.manual_seed(0)
    return {"nemo-ctc-tiny": build_nemo_ctc(folder / "nemo")[0], "nllb-tiny": build_nllb(folder / "nllb"),
            "xtts-tiny": build_xtts(folder / "xtts", max_audio_tokens=605)}


def kind_of(name: str) -> str:
    return stack_models.KINDS.get(name) or {"nemo": "asr", "nllb": "mt", "xtts": "tts"}[name.split("-")[0]]


def path_of(name: str, args: argparse.Namespace) -> Path:
    paths = built(args)
    if name not in paths:
        raise Skip(f"{name} was not built (its build step failed or was skipped)")
    return Path(paths[name])


def shorten_for_tiny() -> None:
    """The tiny rehearsal measures one length of each: the figures are not what it checks."""
    bench_stack.ASR_SECONDS, bench_stack.MT_TOKENS, bench_stack.TTS_SECONDS = (3,), (8,), (1,)


def step_measure(step: Step, args: argparse.Namespace, out: Output, deepspeed: bool = False) -> None:
    import torch

    name, dtype = step.params["model"], step.params["dtype"]
    kind = kind_of(name)
    need(*NEEDS[kind])
    path = path_of(name, args)
    if args.tiny:
        shorten_for_tiny()
    src = "en" if name.startswith(("parakeet", "nemo")) else "es"
    backend = bench_stack.make_backend(kind, path, src, args.device, dtype, deepspeed, str(args.work / "voices"))
    t0 = time.perf_counter()
    backend.setup()
    out.put(model=name, dtype=dtype, load_s=round(time.perf_counter() - t0, 2))
    if args.device == "cuda":
        out.put(cuda_after_load_mb=round(torch.cuda.memory_allocated() / 2**20, 1))
    runner = {"asr": bench_stack.run_asr, "mt": bench_stack.run_mt, "tts": bench_stack.run_tts}[kind]
    row: dict[str, Any] = {}
    bench_args = argparse.Namespace(device=args.device, repeats=args.repeats, dtype=dtype, deepspeed=deepspeed)
    runner(backend, bench_stack.Timer(args.device), bench_args, row)
    out.put(**row, peak_rss_mb=round(bench_stack.rss_mb()[1], 1))
    if args.device == "cuda":
        out.put(cuda_peak_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1))
    out.put(nonfinite=nonfinite(kind, backend, runner, bench_args))


def watched_modules(kind: str, backend: Any) -> dict[str, Any]:
    """Where half precision overflows first: NeMo's encoder, all of NLLB, XTTS's GPT and HiFi-GAN."""
    if kind == "asr":
        return {"encoder": backend.model.encoder}
    if kind == "mt":
        return {"nllb": backend.model}
    return {"gpt": backend.model.gpt, "hifigan": backend.model.hifigan_decoder}


def nonfinite(kind: str, backend: Any, runner: Callable, bench_args: argparse.Namespace) -> dict[str, Any]:
    """One more pass of the measure with a forward hook on every submodule counting outputs with
    NaN or inf (after the timing: the checks synchronise the GPU)."""
    import torch

    calls = {"outputs": 0}
    bad: dict[str, int] = {}

    def hook(name: str) -> Callable:
        def check(module, inputs, output) -> None:
            for t in output if isinstance(output, (tuple, list)) else [output]:
                if isinstance(t, torch.Tensor) and t.is_floating_point():
                    calls["outputs"] += 1
                    if not bool(torch.isfinite(t).all()):
                        bad[name] = bad.get(name, 0) + 1
        return check

    handles = [m.register_forward_hook(hook(f"{root}.{sub}" if sub else root))
               for root, top in watched_modules(kind, backend).items() for sub, m in top.named_modules()]
    bench_stack.ASR_SECONDS, bench_stack.MT_TOKENS, bench_stack.TTS_SECONDS = (
        bench_stack.ASR_SECONDS[:1], bench_stack.MT_TOKENS[:1], bench_stack.TTS_SECONDS[:1])
    try:
        runner(backend, bench_stack.Timer(bench_args.device), argparse.Namespace(**{**vars(bench_args), "repeats": 1}), {})
    finally:
        for h in handles:
            h.remove()
    first = sorted(bad, key=lambda n: -bad[n])[:10]
    return {"outputs_checked": calls["outputs"], "modules_nonfinite": len(bad), "worst": {n: bad[n] for n in first}}


def step_deepspeed(step: Step, args: argparse.Namespace, out: Output) -> None:
    if args.device != "cuda":
        raise Skip("DeepSpeed's kernels need CUDA")
    if importlib.util.find_spec("deepspeed") is None:
        raise Skip("deepspeed is not installed on the machine, and PyPI has no wheel of it (an sdist that compiles "
                   "its kernels at first use): it cannot travel in the kit")
    step_measure(step, args, out, deepspeed=True)


# -- sessions -------------------------------------------------------------------------------------

class ForcedLength(bench_stack.ExactLength):
    """ExactLength, and until the end only ``allowed`` tokens (words: random weights otherwise pick
    pieces that decode to nothing). The first step is left alone: NLLB forces its language code there."""

    def __init__(self, tokens: int, stop: int, allowed: Any = None):
        super().__init__(tokens, stop)
        self.allowed = allowed

    def __call__(self, input_ids, scores):
        done = self.start is not None and input_ids.shape[-1] - self.start >= self.tokens
        first = self.start is None
        scores = super().__call__(input_ids, scores)
        if self.allowed is not None and not done and not first:
            scores[:, ~self.allowed.to(scores.device)] = -float("inf")
        return scores


def word_tokens(tokenizer: Any, size: int) -> Any:
    import torch

    allowed = torch.zeros(size, dtype=torch.bool)
    special = set(tokenizer.all_special_ids)
    for piece, i in tokenizer.get_vocab().items():
        if i < size and i not in special and piece.lstrip("▁").isalpha():
            allowed[i] = True
    return allowed


def force_lengths(engine: Any, mt_tokens: int, tts_seconds: float) -> None:
    """The knob that caps decoding in a Session: MT and XTTS's GPT stop after exactly these lengths
    (a logits processor each, passed through the backends' own generate kwargs)."""
    from transformers import LogitsProcessorList

    mt, tts = engine.mt, engine.tts
    allowed = word_tokens(mt.tokenizer, mt.model.config.vocab_size)
    mt_kwargs, tts_kwargs = mt.generate_kwargs, tts.sampling
    eos, stop = mt.tokenizer.eos_token_id, tts.model.gpt.stop_audio_token
    tokens = round(tts_seconds * bench_stack.TOKENS_PER_S)
    mt.generate_kwargs = lambda: {**mt_kwargs(), "logits_processor": LogitsProcessorList([ForcedLength(mt_tokens, eos, allowed)])}
    tts.sampling = lambda: {**tts_kwargs(), "logits_processor": LogitsProcessorList([ForcedLength(tokens, stop)])}


def clip(args: argparse.Namespace, lang: str) -> Path:
    """CLIP_S of the FLEURS clip in ``lang`` and a second of silence (the end of speech), as WAV."""
    import numpy as np

    from s3tvr import files
    from s3tvr.audio import SAMPLE_RATE
    from s3tvr.audio.decode import load_audio

    path = args.work / f"clip-{lang}.wav"
    speech = load_audio(bench_stack.SPEECH[lang])[: int(CLIP_S[args.tiny] * SAMPLE_RATE)]
    files.write_wav(path, np.concatenate([speech, np.zeros(SAMPLE_RATE, np.float32)]), SAMPLE_RATE)
    return path


def engine_for(pair: str, dtype: str, args: argparse.Namespace) -> Any:
    need(*SESSION_NEEDS)
    from s3tvr.config import load_config
    from s3tvr.live.engine import Engine

    src, tgt = pair.split("-")
    models = TINY if args.tiny else FULL
    overrides = [f"asr.model={path_of(models['asr-' + src], args)}", f"mt.model={path_of(models['mt'], args)}",
                 f"tts.model_dir={path_of(models['tts'], args)}", f"tts.voice_cache={args.work / 'voices'}",
                 "simultaneous.mode=sentence"]
    engine = Engine(load_config("stack", overrides, src_lang=src, tgt_lang=tgt, device=args.device, dtype=dtype))
    engine.setup()
    force_lengths(engine, 8 if args.tiny else MT_TOKENS, 1 if args.tiny else TTS_SECONDS)
    return engine


def first_audio(engine: Any, path: Path, realtime: bool, out: Path) -> list[float]:
    """End of speech -> first audio of each utterance of one Session replaying ``path``."""
    from s3tvr.live.sources import FileSource

    result = engine.session(source=FileSource(str(path), realtime=realtime), output=str(out)).run()
    return [r.latency_s for r in result.records if r.latency_s is not None]


def step_chain(step: Step, args: argparse.Namespace, out: Output) -> None:
    pair, dtype = step.params["pair"], step.params["dtype"]
    engine = engine_for(pair, dtype, args)
    out.put(pair=pair, dtype=dtype, loads=engine.loads)
    wav = clip(args, pair.split("-")[0])
    first_audio(engine, wav, False, args.work / f"warm-{pair}.wav")  # warm-up: first-call allocations, kernel choice
    latencies = first_audio(engine, wav, True, args.work / f"chain-{pair}.wav")
    if not latencies:
        raise RuntimeError("the session spoke nothing (no utterance reached the TTS)")
    out.put(first_audio_s=latencies, median_s=statistics.median(latencies))


def step_concurrency(step: Step, args: argparse.Namespace, out: Output) -> None:
    """Sessions at once on one engine at each level, until the median first audio passes twice one
    session's: the levels reached are kept as they come (a kill at the limit keeps them)."""
    pair, dtype = step.params["pair"], step.params["dtype"]
    engine = engine_for(pair, dtype, args)
    wav = clip(args, pair.split("-")[0])
    first_audio(engine, wav, False, args.work / f"warm-c-{pair}.wav")
    levels: dict[str, Any] = {}
    base = None
    for n in args.levels:
        median = statistics.median(concurrent(engine, wav, n, args))
        base = base or median
        levels[str(n)] = {"median_s": round(median, 3), "vs_one": round(median / base, 2)}
        held = max(int(k) for k, v in levels.items() if v["vs_one"] <= 2.0)
        out.put(pair=pair, dtype=dtype, levels=levels, held_at_2x=held)
        if median > 2 * base:
            break


def concurrent(engine: Any, wav: Path, n: int, args: argparse.Namespace) -> list[float]:
    latencies: list[float] = []
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            latencies.extend(first_audio(engine, wav, True, args.work / f"c{n}-{i}.wav"))
        except BaseException as exc:  # reported below: a thread's error must not vanish
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,), name=f"session-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if not latencies:
        raise RuntimeError(f"{n} sessions spoke nothing")
    return latencies


# -- the command ----------------------------------------------------------------------------------

def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where gpu_run.json and gpu_run.log go ($OUT)")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny models: the rehearsal")
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--dtypes", nargs="+", help="default: bfloat16 float16 on CUDA, float32 on the CPU")
    parser.add_argument("--levels", nargs="+", type=int, help="concurrent sessions (default 1 2 4 8 16; 1 2 with --tiny)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=450.0, help="the whole run: later steps are skipped past it")
    parser.add_argument("--limit-scale", type=float, default=1.0,
                        help="multiplies every step's limit and the budget (the CI rehearsal: limits guard hangs only)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/s3tvr-gpu-run"), help="built models and step files")
    parser.add_argument("--fail", action="append", default=[], metavar="STEP", help="make this step fail (the rehearsal)")
    parser.add_argument("--hang", action="append", default=[], metavar="STEP", help="make this step hang (the rehearsal)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.dtypes = args.dtypes or (["bfloat16", "float16"] if args.device == "cuda" else ["float32"])
    args.levels = args.levels or ([1, 2] if args.tiny else [1, 2, 4, 8, 16])
    args.work.mkdir(parents=True, exist_ok=True)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ["HF_HUB_OFFLINE"] = "1"  # the machine reaches no hub; neither do the tests
    if args.child:
        out = Output(args.child_out)
        out.put()
        try:
            child(Step(**json.loads(args.child)), args, out)
            out.put("ok")
        except Skip as why:
            out.put("skipped", str(why))
        except BaseException as exc:
            log.exception("step failed")
            out.put("failed", f"{exc.__class__.__name__}: {exc}"[:500])
            return 1
        return 0
    report = run_all(args)
    counts = {s: sum(r["status"] == s for r in report["steps"]) for s in ("ok", "skipped", "failed", "timeout")}
    log.info("done in %.0f s: %s; %s", report["wall_s"], counts, args.out / "gpu_run.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
