"""Command line: parse, set up logging, call the package. Status goes to stderr, data to stdout."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import typing
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional

from s3tvr.backends.device import DTYPES
from s3tvr.bounds import range_of
from s3tvr.errors import InputError, S3tvrError, SetupError, Stopped
from s3tvr.languages import LANGUAGES  # XTTS v2's; the model stack covers them, the offline profile translates them into English

if TYPE_CHECKING:
    from s3tvr.config import Config

log = logging.getLogger("s3tvr")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Parser(argparse.ArgumentParser):
    """argparse's errors in the form of every other error: one line, the cause, where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"s3tvr: error: {message} (see {self.prog} --help)\n")


def _number(group: Any, flag: str, owner: type, field: str, help: str, **kwargs: Any) -> None:
    """A numeric flag whose type, default and range come from ``owner``'s field: the library and
    the command line refuse the same values, and --help states the range."""
    hint = typing.get_type_hints(owner)[field]
    kind = float if float in (typing.get_args(hint) or (hint,)) else int
    bounds_ = range_of(owner, field)

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'a whole number' if kind is int else 'a number'} {bounds_}, "
                                             f"not {text!r}") from None
        if not bounds_.contains(value):
            raise argparse.ArgumentTypeError(f"must be {bounds_}, not {text}")
        return value

    default = next(f.default for f in dataclasses.fields(owner) if f.name == field)
    kwargs.setdefault("default", default)
    shown = f"; default {kwargs['default']}" if kwargs["default"] is not None else ""
    group.add_argument(flag, type=parse, help=f"{help} ({bounds_}{shown})", **kwargs)


def _parser() -> argparse.ArgumentParser:
    from s3tvr.backends import registry
    from s3tvr.dub.dubber import DubOptions

    # The options every command that loads models shares, declared once.
    models = _Parser(add_help=False)
    group = models.add_argument_group("models")
    group.add_argument("--config", metavar="FILE",
                       help="a YAML config or preset: offline (CPU, bundled weights; the default), stack (NeMo ASR, NLLB MT, "
                            "XTTS voice cloning; the default with --xtts-dir) or fake (scripted, no models)")
    group.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="override any config key, e.g. vad.endpoint_ms=300 or asr.model=small (repeatable)")
    group.add_argument("--device", choices=["cpu", "cuda"], help="where models run (default: the preset's: cpu offline, cuda for stack)")
    group.add_argument("--dtype", choices=DTYPES, help="torch models' precision (default auto: float16 on CUDA, float32 on CPU)")

    p = _Parser(prog="s3tvr", description="Speech-to-speech translation in your own voice, live.")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more status on stderr (-vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", parents=[models], help="translate speech live: microphone (or a file) in, translated speech out",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Listen in LANG and speak the translation. Each utterance's translation is printed on stdout;\n"
                    "its latency is appended to --log.",
        epilog="backends (choose with --set asr.backend=NAME, mt=NAME, tts.backend=NAME):\n" + registry.describe()
               + "\n\nexamples:\n  s3tvr run es                                   # microphone -> speaker\n"
                 "  s3tvr run es --input talk.ogg --output talk.en.wav --log latency.jsonl\n"
                 "  s3tvr run es --set vad.endpoint_ms=300 --set asr.model=small\n"
                 "  s3tvr run en --xtts-dir models/xtts_v2 --device cuda          # the model stack: NeMo, NLLB, XTTS\n"
                 "  s3tvr run en --config stack --set mt=marian --voice me.wav    # Marian MT, a fixed reference voice")
    run.add_argument("lang", choices=LANGUAGES, metavar="LANG", help="the language spoken: " + ", ".join(LANGUAGES))
    run.add_argument("--to", choices=LANGUAGES, metavar="LANG", help="the language to speak (default: es for en, en otherwise)")
    run.add_argument("--input", metavar="FILE", help="translate a file (audio, or a video's audio track) instead of the microphone")
    run.add_argument("--fast", action="store_true", help="with --input: as fast as possible instead of real-time pace")
    run.add_argument("--output", metavar="FILE", help="write the translation to a WAV file (placed on the input's timeline)")
    run.add_argument("--log", metavar="FILE", help="append one JSON line per utterance with its latency (default: none)")
    run.add_argument("--record-dir", metavar="DIR", help="save each utterance's input and translated audio here")
    run.add_argument("--input-device", metavar="DEV", help="microphone: index or part of the name (see s3tvr devices)")
    run.add_argument("--output-device", metavar="DEV", help="speaker: index or part of the name")
    run.add_argument("--full-duplex", action="store_true", help="keep listening while the translation plays (headphones)")
    run.add_argument("--mode", choices=["sentence", "simultaneous"],
                     help="sentence: translate each utterance once the speaker pauses (the default); simultaneous: "
                          "clause by clause while the speaker goes on (sets simultaneous.mode)")
    _voice_arguments(run, voice_default="learned from your first utterances", session=True)

    ev = sub.add_parser("eval", parents=[models], help="quality, voice, speed and memory on a folder of clips with references",
                        description="Run the system on every clip of a folder in the format of shared/data/speech/fleurs "
                                    "(manifest.jsonl: audio, lang, transcript, ref_eng/ref_spa/ref_rus) and report ASR-BLEU, "
                                    "chrF, text BLEU, source WER, speaker similarity, latency and memory.")
    ev.add_argument("--data", required=True, metavar="DIR", help="folder with manifest.jsonl and the clips it names")
    ev.add_argument("--pair", required=True, metavar="SRC-TGT", help="e.g. es-en: the clips in SRC, references in TGT")
    ev.add_argument("--fast", action="store_true", help="replay as fast as possible (quality only: latency then means little)")
    ev.add_argument("--out", default="eval-out", metavar="DIR", help="where eval.json and eval.png go (default: eval-out)")
    ev.add_argument("--judge-model", default="bundled:base", metavar="MODEL",
                    help="Whisper model that transcribes the output for ASR-BLEU (default: bundled:base)")

    dub = sub.add_parser(
        "dub", parents=[models], help="dub a recording or video into another language, timed to the original",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Replace the speech of INPUT by its translation, each phrase timed to the original, the background\n"
                    "kept (the original speech ducked), the video stream copied as it is. Writes beside OUTPUT: source and\n"
                    "translated subtitles (.srt, .vtt), an editable segments file (.segments.json; edit, then --resume)\n"
                    "and a sync report (.sync.json, also printed).",
        epilog="examples:\n  s3tvr dub talk.mp4 --from es --to en -o talk.en.mp4        # offline: Whisper translate + Piper\n"
               "  s3tvr dub talk.mp4 --from en --to ru -o talk.ru.mp4 --xtts-dir models/xtts_v2   # the model stack, your voice\n"
               "  s3tvr dub speech.wav --to en -o speech.en.wav              # the language is detected")
    dub.add_argument("input", metavar="INPUT", help="an audio or video file ffmpeg reads")
    dub.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                     help="the dubbed file: a video (.mp4 .mkv .mov .webm) for a video input, or audio (.wav .flac .ogg)")
    dub.add_argument("--to", required=True, choices=LANGUAGES, metavar="LANG", help="the language to dub into")
    dub.add_argument("--from", dest="src", metavar="LANG", help="the language spoken (default: detected)")
    _number(dub, "--max-tempo", DubOptions, "max_tempo", metavar="X",
            help="never play a phrase faster than this; longer ones are cut and reported")
    _number(dub, "--duck-db", DubOptions, "duck_db", metavar="DB", help="level of the original speech under the dub; -90 removes it")
    _number(dub, "--max-phrase", DubOptions, "max_phrase_s", metavar="S", help="longest phrase in seconds")
    dub.add_argument("--no-subtitles", action="store_true", help="do not write .srt/.vtt files")
    dub.add_argument("--resume", action="store_true", help="re-render from the edited segments file; only changed phrases")
    dub.add_argument("--work-dir", metavar="DIR", help="where stage results are cached (default: OUTPUT.work)")
    _voice_arguments(dub, voice_default="the cleanest 12 s of the original", session=False)

    _finetune_parser(sub, models)

    sub.add_parser("devices", help="list audio devices (indexes and names for --input-device/--output-device)")

    from s3tvr.models import GROUPS, REPOS

    dl = sub.add_parser("download", help="fetch model weights into models/ (the stack: XTTS v2, NeMo ASR, NLLB)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Fetch weights from Hugging Face at pinned revisions into models/ (or $S3TVR_MODELS). "
                                    "An interrupted download resumes when run again.",
                        epilog="models:\n" + "\n".join(f"  {r.key:<12} {r.repo_id} @ {r.revision} ({r.size})" for r in REPOS.values())
                               + "\n  all          " + " + ".join(GROUPS["all"]))
    dl.add_argument("models", nargs="+", metavar="MODEL", help="xtts, asr-en, asr-es, mt, all …")
    dl.add_argument("--accept-license", action="store_true", help="accept the XTTS v2 license (CPML, non-commercial) without asking")

    rep = sub.add_parser("report", help="latency table (and plot) from a log written by run --log")
    rep.add_argument("log", metavar="LOG", help="the JSON Lines latency log")
    rep.add_argument("--plot", metavar="PNG", help="also draw the latency distribution and per-stage bars")
    return p


def _finetune_parser(sub: argparse._SubParsersAction, models: argparse.ArgumentParser) -> None:
    from s3tvr.finetune.prepare import PrepareOptions
    from s3tvr.finetune.train import TrainOptions

    ft = sub.add_parser("finetune", help="fine-tune XTTS v2 on a speaker's recordings: prepare a dataset, then train",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="A cloned voice closer to the speaker than zero-shot cloning, in two steps.",
                        epilog="examples:\n  s3tvr finetune prepare recordings/ --speaker-ref me.wav -o dataset/\n"
                               "  s3tvr finetune train dataset/ --xtts-dir models/xtts_v2 -o models/xtts_me/\n"
                               "  s3tvr run en --xtts-dir models/xtts_me                     # speaks with the result")
    steps = ft.add_subparsers(dest="step", required=True, metavar="STEP")
    prep = steps.add_parser(
        "prepare", parents=[models], help="recordings -> a clean training set (the target speaker only, denoised, transcribed)",
        description="Cut recordings at pauses into 1-11.5 s clips; keep the clips in the voice of --speaker-ref that are "
                    "clean enough (SNR, clipping, denoising that would eat speech, ASR confidence, enough speech); "
                    "write them loudness-normalised at 22.05 kHz with coqui-tts metadata (train/eval), dataset.json "
                    "(what was dropped and why) and lengths.png.")
    prep.add_argument("inputs", nargs="+", metavar="INPUT", help="audio or video files, or folders of them")
    prep.add_argument("--speaker-ref", action="append", required=True, metavar="FILE",
                      help="a recording of the target speaker alone (repeatable)")
    prep.add_argument("-o", "--output", required=True, metavar="DIR", help="the dataset folder to create")
    prep.add_argument("--lang", choices=LANGUAGES, metavar="LANG", help="the recordings' language (default: detected)")
    prep.add_argument("--speaker-name", default=PrepareOptions.speaker_name, metavar="NAME", help="the speaker's name in the metadata")
    _number(prep, "--threshold", PrepareOptions, "threshold", metavar="X",
            help="least voice similarity to the reference; the same speaker scores ~0.85-0.95")
    _number(prep, "--min-snr", PrepareOptions, "min_snr_db", metavar="DB", help="least speech-to-noise ratio in dB")
    _number(prep, "--min-confidence", PrepareOptions, "min_confidence", metavar="X", help="least mean ASR word probability")
    prep.add_argument("--no-denoise", action="store_true", help="keep the clips as recorded")

    tr = steps.add_parser(
        "train", help="fine-tune XTTS v2's GPT on a prepared dataset",
        description="Fine-tune XTTS v2's GPT with coqui-tts's recipe (the DVAE and decoder stay as they are). The best "
                    "checkpoint by eval loss becomes a folder --xtts-dir loads, with the dataset's clearest clips as its "
                    "default voice. Trains on the GPU when there is one. Ctrl-C saves a checkpoint; --resume goes on.")
    tr.add_argument("dataset", metavar="DATASET", help="a folder made by finetune prepare")
    tr.add_argument("--xtts-dir", default="models/xtts_v2", metavar="PATH",
                    help="the XTTS v2 model to start from, with dvae.pth and mel_stats.pth (s3tvr download xtts xtts-train)")
    tr.add_argument("-o", "--output", required=True, metavar="DIR", help="the fine-tuned model's folder")
    _number(tr, "--epochs", TrainOptions, "epochs", metavar="N", help="at most N passes over the data")
    _number(tr, "--max-steps", TrainOptions, "max_steps", metavar="N", help="stop after N steps, batches: a quick run")
    _number(tr, "--batch-size", TrainOptions, "batch_size", metavar="N", help="clips per step")
    _number(tr, "--grad-accum", TrainOptions, "grad_accum", metavar="N", help="batches per optimizer step")
    _number(tr, "--lr", TrainOptions, "lr", metavar="X", help="learning rate; the default is the recipe's")
    _number(tr, "--patience", TrainOptions, "patience", metavar="N", help="stop when the eval loss has not improved for N epochs")
    _number(tr, "--min-minutes", TrainOptions, "min_minutes", metavar="M", help="refuse datasets with less training speech")
    _number(tr, "--workers", TrainOptions, "workers", metavar="N", help="data loader processes, 0: none")
    tr.add_argument("--resume", action="store_true", help="continue an interrupted run in the output folder")


def _voice_arguments(parser: argparse.ArgumentParser, voice_default: str, session: bool) -> None:
    """The voice-cloning flags run and dub share (XTTS v2, the stack preset)."""
    group = parser.add_argument_group("voice cloning (XTTS v2, the stack preset)")
    group.add_argument("--xtts-dir", metavar="PATH", help="XTTS v2 folder with model.pth and vocab.json (s3tvr download "
                                                          "xtts): speak in your own voice; selects the stack preset")
    group.add_argument("--xtts-config", metavar="PATH", help="XTTS v2 config.json (default: config.json in --xtts-dir)")
    group.add_argument("--voice", action="append", default=[], metavar="FILE",
                       help=f"a recording of the speaker to clone (repeatable: several clips of one person); default: {voice_default}")
    if session:
        group.add_argument("--speaker", metavar="NAME",
                           help="keep the voice learned in this session under NAME and start from it next time")
    else:
        parser.set_defaults(speaker=None)
    group.add_argument("--deepspeed", action="store_true", help="DeepSpeed inference kernels for XTTS's GPT (CUDA; pip install deepspeed)")
    group.add_argument("--seed", type=int, metavar="N", help="make XTTS's sampling reproducible")


def _load_config(args: argparse.Namespace, src_lang: str, tgt_lang: str) -> "Config":
    """The preset (offline, or stack when XTTS is asked for), --set overrides, then the XTTS flags."""
    from s3tvr.config import load_config

    preset = args.config or ("stack" if args.xtts_dir or args.xtts_config else "offline")
    config = load_config(preset, args.overrides, src_lang=src_lang, tgt_lang=tgt_lang, device=args.device, dtype=args.dtype)
    return _with_xtts_options(args, config)


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.WARNING if args.quiet else (logging.INFO if args.verbose < 2 else logging.DEBUG)
    logging.basicConfig(level=level, format="s3tvr: %(message)s", stream=sys.stderr)
    if args.verbose < 2:
        for noisy in ("faster_whisper", "piper", "httpx", "huggingface_hub", "nemo_logger", "TTS"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        logging.getLogger("nv_one_logger").setLevel(logging.ERROR)  # NeMo's telemetry announces itself being off
        if args.command != "download":  # model libraries' own progress bars and config advice, set before they load
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    restore = _stop_on_signals()
    try:
        commands = {"run": _run, "dub": _dub, "finetune": _finetune, "devices": _devices, "report": _report, "eval": _eval,
                    "download": _download}
        return commands[args.command](args)
    except S3tvrError as exc:
        if args.verbose >= 2:  # debugging: where it happened and the library error it stands for
            log.debug("traceback", exc_info=exc)
            cause = exc.__cause__ or exc.__context__
            if cause is not None:
                log.debug("caused by", exc_info=cause)
        print(f"s3tvr: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as stop:
        return _stopped(getattr(stop, "signum", signal.SIGINT))
    finally:
        restore()


def _stop_on_signals() -> Callable[[], None]:
    """SIGTERM (systemd, docker stop, a supervisor) and SIGHUP (the terminal closed) stop a command
    the way Ctrl-C does: raised in the main thread, where every command keeps what it finished.
    Once stopping, further signals are ignored: the stop itself is bounded (about a second; a
    training checkpoint takes longer) and must not be cut short. Returns what restores the handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # only the main thread may set handlers; a library caller keeps its own
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _stopped(signum: int) -> int:
    """The last line of a stopped command, and the shell's exit code for a death by that signal."""
    try:
        print(f"s3tvr: stopped ({signal.Signals(signum).name}): finished work is kept", file=sys.stderr)
    except OSError:  # SIGHUP: the terminal is gone
        pass
    return 128 + signum


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from s3tvr.engine import Engine
    from s3tvr.latency import format_table, summarize

    if args.fast and not args.input:
        raise InputError("--fast needs --input: a microphone cannot go faster than real time")
    target = args.to or ("es" if args.lang == "en" else "en")
    config = _load_config(args, args.lang, target)
    # Set as given, not through --set: device names hold characters YAML would parse.
    audio = {key: value for key, value in (("input_device", args.input_device), ("output_device", args.output_device))
             if value is not None}
    if args.fast:
        audio["realtime"] = False
    if args.full_duplex:
        audio["full_duplex"] = True
    config = replace(config, audio=replace(config.audio, **audio))
    if args.mode:
        config = replace(config, simultaneous=replace(config.simultaneous, mode=args.mode))

    def show(rec: dict) -> None:  # translations are the data: stdout, as each is spoken
        if rec["tgt_text"] or rec["error"]:
            try:
                print(f"[{rec['utt_id']}] {rec['tgt_text'] or 'ERROR ' + rec['error']}", flush=True)
            except OSError:  # the terminal closed (SIGHUP follows) or a reader went away: the log still has it
                pass

    with Engine(config) as engine:
        session = engine.session(input=args.input, output=args.output, log_path=args.log, record_dir=args.record_dir,
                                 on_record=show, voice=args.voice, speaker=args.speaker or "")
        log.info("%s -> %s with %s", args.lang, target, engine.description)
        result = session.run()
    if result.records:
        log.info("\n%s", format_table(summarize(result.records)))
    if result.aborted:
        return _stopped(result.stop_signal)
    result.check()
    if args.output:
        log.info("wrote %s", args.output)
    return 0


def _with_xtts_options(args: argparse.Namespace, config: "Config") -> "Config":
    """The XTTS flags as tts options, set as given (paths hold characters YAML would parse). The
    voice (--voice, --speaker) is not the model's: it goes to the session."""
    from dataclasses import replace

    from s3tvr.config import BackendSection

    given = {"model_dir": args.xtts_dir, "config": args.xtts_config, "deepspeed": args.deepspeed or None, "seed": args.seed}
    given = {key: value for key, value in given.items() if value is not None}
    if not given and not args.voice and not args.speaker:
        return config
    if config.tts.backend != "xtts":
        raise InputError(f"--xtts-dir, --voice, --speaker, --deepspeed and --seed need the xtts TTS, but this config "
                         f"uses {config.tts.backend}: add --config stack or --set tts.backend=xtts")
    return replace(config, tts=BackendSection("xtts", {**config.tts.options, **given}))


def _dub(args: argparse.Namespace) -> int:
    from pathlib import Path

    from s3tvr.dub.dubber import Dubber, DubOptions
    from s3tvr.dub.report import format_table

    config = _load_config(args, args.src or "auto", args.to)
    options = DubOptions(max_tempo=args.max_tempo, duck_db=args.duck_db, max_phrase_s=args.max_phrase,
                         subtitles=not args.no_subtitles, resume=args.resume,
                         work_dir=Path(args.work_dir) if args.work_dir else None)
    with _RichProgress(enabled=not args.quiet) as progress:
        result = Dubber(config, args.input, args.output, options, progress, voice=args.voice).run()
    print(format_table(result.report))
    for path in result.files:
        log.info("wrote %s", path)
    return 0


def _finetune(args: argparse.Namespace) -> int:
    return _finetune_train(args) if args.step == "train" else _finetune_prepare(args)


def _finetune_prepare(args: argparse.Namespace) -> int:
    from s3tvr.config import load_config
    from s3tvr.finetune.prepare import PrepareOptions, Preparer
    from s3tvr.finetune.report import format_table

    lang = args.lang or ""
    config = load_config(args.config or "offline", args.overrides, src_lang=lang or "en", tgt_lang=lang or "en",
                         device=args.device, dtype=args.dtype)
    options = PrepareOptions(language=lang, speaker_name=args.speaker_name, threshold=args.threshold,
                             min_snr_db=args.min_snr, min_confidence=args.min_confidence, denoise=not args.no_denoise)
    with _RichProgress(enabled=not args.quiet) as progress:
        result = Preparer(config, args.inputs, args.output, args.speaker_ref, options, progress).run()
    print(format_table(result.report))
    log.info("wrote %s (dataset.json: every clip and why it was dropped; lengths.png)", result.folder)
    return 0


def _finetune_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from s3tvr.finetune.train import TrainOptions, train

    if args.verbose < 2:  # coqui's trainer prints its step tables to stderr; the progress bar says enough
        try:
            from trainer.logger import handler

            handler.setLevel(logging.WARNING)
        except ImportError:
            pass  # train() says how to install it
    options = TrainOptions(epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, grad_accum=args.grad_accum,
                           lr=args.lr, patience=args.patience, min_minutes=args.min_minutes, workers=args.workers,
                           resume=args.resume)
    with _RichProgress(enabled=not args.quiet) as progress:
        result = train(args.dataset, args.xtts_dir, args.output, options, progress)
    s = result.summary
    print(f"{s['steps']} steps, best eval loss {s['best_eval_loss']} ({s['stopped']}): {result.folder}")
    log.info("speak with it: s3tvr run %s --xtts-dir %s", s["language"], Path(result.folder))
    return 0


class _RichProgress:
    """A progress bar with ETA per stage (dub, finetune), on stderr."""

    def __init__(self, enabled: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bars = Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                             console=Console(stderr=True), disable=not enabled)

    def __enter__(self) -> "_RichProgress":
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def stage(self, name: str, total: int):
        task = self.bars.add_task(name, total=max(total, 1))
        if total == 0:
            self.bars.update(task, completed=1)
        return lambda: self.bars.advance(task)


def _download(args: argparse.Namespace) -> int:
    from s3tvr.models import download

    for path in download(args.models, accept_license=args.accept_license):
        print(path)
    return 0


def _devices(args: argparse.Namespace) -> int:
    from s3tvr.audio.devices import list_devices

    devices = list_devices()
    if not devices:
        raise SetupError("no audio devices found: connect a microphone or speaker, or start the sound server "
                         "(PulseAudio or PipeWire); files still work: s3tvr run LANG --input FILE --output OUT.wav")
    print(f"{'idx':>3}  {'in':>3} {'out':>3}  {'rate':>6}  {'api':<10} name")
    for d in devices:
        mark = (" <in" if d["default_input"] else "") + (" <out" if d["default_output"] else "")
        print(f"{d['index']:>3}  {d['inputs']:>3} {d['outputs']:>3}  {d['rate']:>6.0f}  {d['hostapi'][:10]:<10} {d['name']}{mark}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from s3tvr import files
    from s3tvr.latency import format_table, plot, read_log, summarize

    if args.plot:
        files.check_output(args.plot, "--plot")
    records = read_log(args.log)
    if not records:
        raise InputError(f"{args.log} holds no utterances: run s3tvr run --log {args.log} first")
    print(format_table(summarize(records)))
    if args.plot:
        plot(records, args.plot)
        print(f"s3tvr: plot written to {args.plot}", file=sys.stderr)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from s3tvr import files
    from s3tvr.eval import report
    from s3tvr.eval.runner import evaluate

    out = Path(args.out)
    files.check_output(out, "--out", folder=True)  # made once the results exist: a failed eval leaves nothing
    result = evaluate(args.data, args.pair, config=args.config, overrides=args.overrides, realtime=not args.fast,
                      judge_model=args.judge_model, device=args.device, dtype=args.dtype)
    print(report.format_table(result))
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(result, out / "eval.json")
    report.plot(result, out / "eval.png")
    print(f"s3tvr: wrote {out / 'eval.json'} and {out / 'eval.png'}", file=sys.stderr)
    return 0
