"""The S3TVR stack at full size, measured: load time, memory and compute per stage, and the end of
speech -> first translated audio latency that follows, on this machine (CPU) or a CUDA GPU.

No real weights reach this machine, but speed and memory do not depend on the weights' values:
each model is built at its published configuration with random weights (benchmarks/gpu/stack_models.py),
saved the way the real checkpoint comes, and loaded through the backend users run. Random weights
stop at random, so generation is forced to typical lengths: MT to 25 and 60 output tokens (a
FLORES sentence is ~25 NLLB tokens in English, ~60 is a long one), XTTS's GPT to the tokens of 3 s
and 10 s of speech (21.5 per second: one per 1024 samples at 22050 Hz).

    .venv/bin/python benchmarks/bench_stack.py --out stack.json               # CPU, float32
    .venv/bin/python benchmarks/bench_stack.py --device cuda --dtype float16  # on a GPU; also bfloat16
    .venv/bin/python benchmarks/bench_stack.py --device cuda --deepspeed      # XTTS with DeepSpeed

Models are built once into --work (reused by later runs) in a child process, then loaded one at
a time here and freed before the next, so the memory figures are each model's own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "gpu"))  # stack_models
sys.path.insert(0, str(HERE.parent))

import stack_models  # noqa: E402

ENDPOINT_WAIT_S = 0.37  # median measured by bench_latency.py (500 ms of silence; the segmenter is the same)
TOKENS_PER_S = 22050 / 1024  # XTTS v2's GPT: one audio token per 1024 samples at 22050 Hz
ASR_SECONDS = (3, 6, 12)
MT_TOKENS = (25, 60)
TTS_SECONDS = (3, 10)
SPEECH = {"en": HERE.parent / "tests/data/fleurs-en-004.ogg", "es": HERE.parent / "tests/data/fleurs-es-000.ogg"}
TEXT = {"en": "The committee met on Tuesday to discuss the new budget for the coming year.",
        "es": "El comité se reunió el martes para discutir el nuevo presupuesto del próximo año."}


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process, in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def build(name: str, work: Path) -> Path:
    """The saved model of ``name`` under ``work``, built (in a child process) when missing."""
    folder = work / name
    done = folder / "BUILT"
    if not done.is_file():
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=_build_child, args=(name, folder))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"building {name} failed (exit {proc.exitcode})")
    return Path(done.read_text())


def _build_child(name: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    kind = stack_models.KINDS[name]
    builder = {"asr": stack_models.build_nemo, "mt": stack_models.build_nllb}.get(kind)
    path = builder(name, folder) if builder else stack_models.build_xtts(folder)
    (folder / "BUILT").write_text(str(path))


class Timer:
    def __init__(self, device: str):
        self.device = device

    def sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def median(self, fn, repeats: int) -> float:
        fn()  # warm-up: first-call allocations and kernel selection
        times = []
        for _ in range(repeats):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)


def make_backend(kind: str, path: Path, src: str, device: str, dtype: str, deepspeed: bool = False,
                 voice_cache: str = ""):
    """The backend users run for a model of ``kind`` ("asr", "mt", "tts") at ``path``, not set up yet:
    ASR hearing ``src``; MT from es to en; XTTS speaking en (benchmarks/gpu/gpu_run.py builds its own too)."""
    from s3tvr.backends.asr import nemo
    from s3tvr.backends.mt import nllb
    from s3tvr.backends.tts import xtts

    tgt = "es" if src == "en" else "en"
    if kind == "asr":
        return nemo.Backend(nemo.Config(model=str(path)), src, tgt, device, dtype)
    if kind == "mt":
        return nllb.Backend(nllb.Config(model=str(path), local_files_only=True), "es", "en", device, dtype)
    return xtts.Backend(xtts.Config(model_dir=str(path), deepspeed=deepspeed, voice_cache=voice_cache), "es", "en", device, dtype)


def load(name: str, path: Path, args) -> tuple[object, dict]:
    """Load through the backend users run; the backend, and load time and memory."""
    src = "en" if name.startswith("parakeet") else "es"
    backend = make_backend(stack_models.KINDS[name], path, src, args.device, args.dtype, args.deepspeed)
    t0 = time.perf_counter()
    backend.setup()
    row = {"model": name, "params": stack_models.count_params(name), "published": stack_models.PUBLISHED[name],
           "load_s": time.perf_counter() - t0}
    row["rss_mb"], row["load_peak_rss_mb"] = rss_mb()
    return backend, row


def run_asr(backend, timer: Timer, args, row: dict) -> None:
    from s3tvr.audio.decode import load_audio

    speech = load_audio(SPEECH[backend.src_lang])
    for seconds in ASR_SECONDS:
        audio = np.resize(speech, seconds * 16000).astype(np.float32)  # the clip, repeated to length
        row[f"asr_{seconds}s"] = timer.median(lambda audio=audio: backend.transcribe(audio, backend.src_lang), args.repeats)


def run_mt(backend, timer: Timer, args, row: dict) -> None:
    import torch

    enc = backend.tokenizer([TEXT["es"]], return_tensors="pt").to(args.device)
    for n in MT_TOKENS:
        def generate(n=n):
            with torch.inference_mode():
                backend.model.generate(**enc, num_beams=1, min_new_tokens=n, max_new_tokens=n, **backend.generate_kwargs())
        row[f"mt_{n}_tokens"] = timer.median(generate, args.repeats)


class ExactLength:
    """A logits processor that makes XTTS's GPT stop after exactly ``tokens`` audio tokens."""

    def __init__(self, tokens: int, stop: int):
        self.tokens, self.stop, self.start = tokens, stop, None

    def __call__(self, input_ids, scores):
        if self.start is None:
            self.start = input_ids.shape[-1]
        if input_ids.shape[-1] - self.start < self.tokens:
            scores[:, self.stop] = -float("inf")
        else:
            scores[:] = -float("inf")
            scores[:, self.stop] = 0.0
        return scores


def run_tts(backend, timer: Timer, args, row: dict) -> None:
    import torch
    from transformers import LogitsProcessorList

    from s3tvr.languages import XTTS_CODES

    voice = backend.new_voice([SPEECH["en"]])
    latents, embedding = voice.for_utterance(None)
    model = backend.model
    stop = model.gpt.stop_audio_token
    for seconds in TTS_SECONDS:
        tokens = round(seconds * TOKENS_PER_S)
        first: list[float] = []
        audio: list[float] = []

        def speak(tokens=tokens, first=first, audio=audio):
            t0 = time.perf_counter()
            got_first = False
            samples = 0
            with torch.inference_mode(), backend.autocast():
                for chunk in model.inference_stream(TEXT["en"], XTTS_CODES["en"], latents, embedding,
                                                    stream_chunk_size=backend.config.stream_chunk_size,
                                                    logits_processor=LogitsProcessorList([ExactLength(tokens, stop)])):
                    timer.sync()
                    if not got_first:
                        first.append(time.perf_counter() - t0)
                        got_first = True
                    samples += chunk.shape[-1]
            audio.append(samples / backend.sample_rate)

        total = timer.median(speak, args.repeats)
        row[f"tts_{seconds}s_first_chunk"] = statistics.median(first[1:])  # [0] is the warm-up
        row[f"tts_{seconds}s_rtf"] = total / statistics.median(audio)


def measure(name: str, args) -> dict:
    """One model's figures, measured in a process of its own: its memory is its own, and nothing
    the previous model left in the allocator counts against it."""
    path = build(name, args.work)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_measure_child, args=(name, path, args, results))
    proc.start()
    row = results.get()
    proc.join()
    if row is None:
        raise SystemExit(f"measuring {name} failed (exit {proc.exitcode})")
    return row


def _measure_child(name: str, path: Path, args, results) -> None:
    row = None
    try:
        import torch

        backend, row = load(name, path, args)
        timer = Timer(args.device)
        {"asr": run_asr, "mt": run_mt, "tts": run_tts}[stack_models.KINDS[name]](backend, timer, args, row)
        row["peak_rss_mb"] = rss_mb()[1]
        if args.device == "cuda":
            row["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    finally:
        results.put(row)


def chain(rows: dict[str, dict]) -> list[dict]:
    """End of speech -> first translated audio: endpoint wait + ASR (6 s) + MT (25 tokens) + XTTS's first chunk."""
    out = []
    for pair, asr in (("en-es", "parakeet-ctc-1.1b"), ("es-en", "fastconformer-es")):
        for mt in ("nllb-1.3b", "nllb-600m"):
            if asr in rows and mt in rows and "xtts-v2" in rows:
                parts = {"endpoint_s": ENDPOINT_WAIT_S, "asr_s": rows[asr]["asr_6s"], "mt_s": rows[mt]["mt_25_tokens"],
                         "tts_first_chunk_s": rows["xtts-v2"]["tts_3s_first_chunk"]}
                out.append({"pair": pair, "asr": asr, "mt": mt, **parts, "total_s": sum(parts.values())})
    return out


def print_table(rows: list[dict], chains: list[dict]) -> None:
    print(f"\n{'model':<20}{'params':>9}{'vs published':>13}{'load s':>8}{'RSS MB':>8}  compute (median s)")
    for r in rows:
        work = "  ".join(f"{k}={v:.2f}" for k, v in r.items() if k.startswith(("asr_", "mt_", "tts_")))
        print(f"{r['model']:<20}{r['params'] / 1e6:>8.0f}M{r['params'] / r['published'] - 1:>+12.1%}"
              f"{r['load_s']:>8.1f}{r['peak_rss_mb']:>8.0f}  {work}")
    for c in chains:
        print(f"chain {c['pair']} ({c['asr']} + {c['mt']} + xtts-v2): endpoint {c['endpoint_s']:.2f} + ASR {c['asr_s']:.2f} "
              f"+ MT {c['mt_s']:.2f} + TTS first chunk {c['tts_first_chunk_s']:.2f} = {c['total_s']:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(stack_models.PUBLISHED), choices=list(stack_models.PUBLISHED))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    parser.add_argument("--deepspeed", action="store_true", help="XTTS's GPT with DeepSpeed's kernels (CUDA)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/s3tvr-bench-stack"), help="where the built models are kept")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    import torch

    started = time.perf_counter()
    rows = {}
    for name in args.models:
        print(f"{name} ...", flush=True)
        rows[name] = measure(name, args)
        print(json.dumps(rows[name]), flush=True)
    chains = chain(rows)
    print_table(list(rows.values()), chains)
    from s3tvr.backends.device import torch_dtype

    result = {"device": args.device, "dtype": str(torch_dtype(args.dtype, args.device)).removeprefix("torch."),
              "deepspeed": args.deepspeed, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "models": list(rows.values()), "chains": chains, "wall_s": time.perf_counter() - started}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    print(f"\nwall time {result['wall_s'] / 60:.1f} min")
    # Left for the next run, but all six take 16 GB: a full disk otherwise surprises whoever runs next.
    kept = sum(f.stat().st_size for f in args.work.rglob("*") if f.is_file())
    print(f"the built models stay in {args.work} ({kept / 1e9:.1f} GB) for the next run; delete it when done")


if __name__ == "__main__":
    main()
