"""Command line: parse, set up logging, call the package. Status goes to stderr, data to stdout.

:func:`main` (the ``s3tvr`` command) is here, with one function per command; beside it
:mod:`~s3tvr.cli.arguments` declares every command's flags, and :mod:`~s3tvr.cli.config_docs`
describes every configuration key from the fields' comments, for ``s3tvr config`` and for
docs/configuration.md (``python -m s3tvr.cli.config_docs``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Callable, Optional

from s3tvr.cli.arguments import build_parser
from s3tvr.errors import InputError, S3tvrError, SetupError, Stopped, TranslationFailed

if TYPE_CHECKING:
    from s3tvr.config import Config
    from s3tvr.dub.dubber import DubOptions
    from s3tvr.latency.record import UtteranceRecord
    from s3tvr.live.session import RunResult, Session
    from s3tvr.text.glossary import Glossary

log = logging.getLogger("s3tvr")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _load_config(args: argparse.Namespace, src_lang: str, tgt_lang: str) -> "Config":
    """Every command's configuration, assembled in one call before anything sees it: the preset,
    its into: changes for the target language (and for dubbing), the --set overrides, then the
    flags as the overrides they stand for (arguments.CONFIG_FLAGS, then the languages): a flag wins
    over a --set of the same key."""
    from s3tvr.cli.arguments import flag_overrides
    from s3tvr.config import load_config

    purpose = "dub" if "dub" in (args.command, getattr(args, "purpose", None)) else "live"
    flags = [*flag_overrides(args), ("src_lang", src_lang), ("tgt_lang", tgt_lang)]
    config = load_config(_preset(args), [*args.overrides, *flags], purpose=purpose)
    if getattr(args, "captions", None) and _needs_transcript(config):  # captions ask for the source track
        config = load_config(_preset(args), [("asr.transcript", True), *args.overrides, *flags], purpose=purpose)
    # The voice (--voice, --speaker) is the session's, not the model's, but it needs XTTS as its flags do.
    xtts = any(key.startswith("tts.") for key, _ in flags)
    if (xtts or getattr(args, "voice", None) or getattr(args, "speaker", None)) and config.tts.backend != "xtts":
        raise InputError(f"--xtts-dir, --voice, --speaker, --deepspeed and --seed need the xtts TTS, but this config "
                         f"uses {config.tts.backend}: add --config stack or --set tts.backend=xtts")
    return config


def _needs_transcript(config: "Config") -> bool:
    """Whether the ASR's text is not the language spoken (Whisper's translate task) and nothing said
    whether to transcribe it too: then captions' source track asks for the transcript pass."""
    asr = config.asr
    return asr.backend == "faster-whisper" and asr.options.get("task") == "translate" and "transcript" not in asr.options


def _preset(args: argparse.Namespace) -> str:
    """--config, else stack when XTTS is asked for, else offline."""
    return args.config or ("stack" if getattr(args, "xtts_dir", None) or getattr(args, "xtts_config", None) else "offline")


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
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
        commands = {"run": _run, "talk": _talk, "dub": _dub, "finetune": _finetune, "devices": _devices, "report": _report, "eval": _eval,
                    "download": _download, "serve": _serve, "client": _client, "config": _config}
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
    from s3tvr.live.engine import Engine

    if args.fast and not args.input:
        raise InputError("--fast needs --input: a microphone cannot go faster than real time")
    target = _default_target(args.lang, args.to)
    config = _load_config(args, args.lang, target)
    glossary = _glossary(args)
    with Engine(config) as engine:
        session = engine.session(input=args.input, output=args.output, log_path=args.log, record_dir=args.record_dir,
                                 on_record=_shown(direction=False), voice=args.voice, speaker=args.speaker or "",
                                 captions=args.captions, glossary=glossary)
        log.info("%s -> %s with %s", args.lang, target, engine.description)
        result = session.run()
    return _ran(session, result, args.output)


def _talk(args: argparse.Namespace) -> int:
    """Two people, one device: each utterance into the other's language, its direction in the caption."""
    from s3tvr.live.talk import TalkEngine, check_languages

    if args.fast and not args.input:
        raise InputError("--fast needs --input: a microphone cannot go faster than real time")
    a, b = args.lang_a, args.lang_b
    check_languages(a, b)
    configs, glossary = (_load_config(args, a, b), _load_config(args, b, a)), _glossary(args)
    with TalkEngine(*configs) as engine:
        session = engine.session(input=args.input, output=args.output, log_path=args.log, on_record=_shown(direction=True),
                                 glossary=glossary, captions=args.captions)
        log.info("talk %s", engine.description)
        result = session.run()
    return _ran(session, result, args.output)


def _shown(direction: bool) -> Callable[["UtteranceRecord"], None]:
    """What prints each translation on stdout as it is spoken (the data: stdout), with its direction
    (``[3] es→en: …``) in talk mode."""
    def show(rec: "UtteranceRecord") -> None:
        if rec.tgt_text or rec.error:
            where = f"{rec.src_lang}→{rec.tgt_lang}: " if direction else ""
            try:
                print(f"[{rec.utt_id}] {where}{rec.tgt_text or 'ERROR ' + rec.error}", flush=True)
            except OSError:  # the terminal closed (SIGHUP follows) or a reader went away: the log still has it
                pass
    return show


def _ran(session: "Session", result: "RunResult", output: Optional[str]) -> int:
    """A live run's end: its latency table, then a stop's exit code, or the check that it translated
    something and what it wrote."""
    from s3tvr.latency.report import format_table, summarize

    if result.records:
        log.info("\n%s", format_table(summarize(result.records)))
    if result.aborted:
        return _stopped(result.stop_signal)
    result.check()
    if output:
        log.info("wrote %s", output)
    _wrote_captions(session)
    return 0


def _wrote_captions(session: "Session") -> None:
    if session.captions is not None:
        for path in session.captions.paths:
            log.info("wrote %s", path)


def _glossary(args: argparse.Namespace) -> "Glossary":
    """--glossary's terms, read and checked before any model loads (none without the flag)."""
    from s3tvr.text import glossary

    return glossary.load(args.glossary) if args.glossary else glossary.NO_GLOSSARY


def _default_target(src: str, to: Optional[str]) -> str:
    """``--to``, else the language a speaker of ``src`` most likely wants: Spanish for English, else English."""
    return to or ("es" if src == "en" else "en")


def _config(args: argparse.Namespace) -> int:
    """The configuration run (serve, dub) would use with these arguments, as commented YAML on stdout."""
    from s3tvr.cli.config_docs import commented_yaml

    if args.lang is None:  # only --to given: the other of the two languages the offline voices speak
        args.lang = "es" if args.to in (None, "en") else "en"
    target = _default_target(args.lang, args.to)
    config = _load_config(args, args.lang, target)
    use = {"run": f"run {args.lang}", "serve": f"serve --from {args.lang}",
           "dub": "dub INPUT -o OUTPUT" + (f" --from {args.lang}" if args.lang != "auto" else "")}[args.purpose]
    dub = " and dub:" if args.purpose == "dub" else ""
    title = [f"What s3tvr {args.purpose} uses for {args.lang} -> {target}: {_preset(args)}, its into: {target}{dub} changes, "
             "then --set, then the flags.",
             "After each key: its range · what it means (docs/configuration.md has it all).",
             f"Use it: s3tvr {use} --to {target} --config THIS.yaml"]
    print(commented_yaml(config, title), end="")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from s3tvr.live.engine import Engine
    from s3tvr.serve import ServeOptions, token_problem
    from s3tvr.serve.server import serve

    token, given = args.token, "--token"
    if token is None:
        token, given = os.environ.get("S3TVR_TOKEN"), "S3TVR_TOKEN"
    problem = token_problem(token) if token is not None else ""
    if problem:  # an empty one would serve anyone who reaches the port, without a word
        raise InputError(f"{given} {problem}")
    target = _default_target(args.src, args.to)
    config = _load_config(args, args.src, target)
    options = ServeOptions(host=args.host, port=args.port, token=token, max_sessions=args.max_sessions, log_dir=args.log_dir,
                           max_ahead_s=args.max_ahead, max_unread_s=args.max_unread, voice=tuple(args.voice),
                           allow_origins=tuple(args.allow_origins), share_voices=args.share_voices, glossary=_glossary(args))
    if not args.ray and (args.replicas is not None or args.replica_gpus is not None):
        raise InputError("--replicas and --replica-gpus are for a Ray cluster: add --ray ADDRESS (auto: the one on this machine)")
    if args.ray and args.talk:
        raise InputError("--talk serves from this process's own models, not replicas on a cluster: leave out --ray")
    if args.ray:  # replicas on a cluster: this process loads no model
        from s3tvr.serve import replicas

        count, gpus = 2 if args.replicas is None else args.replicas, args.replica_gpus or 0.0
        if count < 1 or gpus < 0:
            raise InputError(f"--replicas must be at least 1 and --replica-gpus at least 0, not {count} and {gpus:g}")
        replicas.serve(config, options, replicas.ReplicaOptions(address=args.ray, replicas=count, gpus=gpus))
        return 0
    # Stopped by SIGINT/SIGTERM: uvicorn closes every session, then raises the signal again, and
    # it ends here as run's stop does (128 + the signal's number).
    if args.talk:
        from s3tvr.live.talk import TalkEngine, check_languages

        check_languages(args.src, target)
        engine: Engine = TalkEngine(config, _load_config(args, target, args.src))
    else:
        engine = Engine(config)
    with engine:
        serve(engine, options)
    return 0


def _client(args: argparse.Namespace) -> int:
    from s3tvr.serve import client

    if args.input and (args.input_device or args.listen_to):
        raise InputError(f"{'--input-device' if args.input_device else '--listen-to'} is a live input's: leave it out with --input")
    if args.virtual_mic and (args.output or args.output_device):
        raise InputError(f"--virtual-mic and {'--output' if args.output else '--output-device'} both say where the "
                         "translation goes: give one")
    result = client.run(args.url, args.src, args.to, input=args.input, output=args.output, token=args.token, speaker=args.speaker,
                        input_device=args.input_device, output_device=args.output_device, virtual_mic=args.virtual_mic,
                        listen_to=args.listen_to or "", duck_db=args.duck, show=lambda line: print(line, flush=True),
                        captions=args.captions, glossary=args.glossary)
    print(result.summary(), flush=True)
    return 0


def _dub(args: argparse.Namespace) -> int:
    from pathlib import Path

    from s3tvr.dub.dubber import Dubber, DubOptions
    from s3tvr.dub.report import format_table

    options = DubOptions(max_tempo=args.max_tempo, background=args.background, duck_db=args.duck_db, max_phrase_s=args.max_phrase,
                         subtitles=not args.no_subtitles, subtitle_speakers=args.subtitle_speakers,
                         subtitles_only=args.subtitles_only, resume=args.resume, speakers=args.speakers,
                         speakers_file=Path(args.speakers_file) if args.speakers_file else None,
                         work_dir=Path(args.work_dir) if args.work_dir else None, glossary=_glossary(args))
    if options.glossary and len(args.to) > 1:
        raise InputError("--glossary gives the words in one language: dub into one --to language at a time with it")
    if _is_catalogue(args):
        return _dub_catalogue(args, options)
    config = _load_config(args, args.src or "auto", args.to[0])
    with _RichProgress(enabled=not args.quiet) as progress:
        result = Dubber(config, args.input[0], args.output, options, progress, voice=args.voice).run()
    if not options.subtitles_only:  # with subtitles only, nothing was dubbed: no sync to report
        print(format_table(result.report))
    for path in result.files:
        log.info("wrote %s", path)
    return 0


def _is_catalogue(args: argparse.Namespace) -> bool:
    """More than one input or language, a folder, a glob, a list or --ray: -o names a folder."""
    from glob import has_magic
    from pathlib import Path

    one = args.input[0]
    single = (len(args.input) == 1 and len(args.to) == 1 and not args.ray and not one.startswith("@")
              and not Path(one).is_dir() and not (has_magic(one) and not Path(one).exists()))
    if not args.ray and (args.workers is not None or args.cpus_per_worker != 1.0):
        raise InputError("--workers and --cpus-per-worker size the Ray workers: add --ray auto (or the cluster's address)")
    if args.cpus_per_worker <= 0:
        raise InputError(f"--cpus-per-worker must be above 0, not {args.cpus_per_worker:g}")
    if not single and (args.work_dir or args.subtitles_only):
        raise InputError(f"{'--work-dir' if args.work_dir else '--subtitles-only'} is for one file: a catalogue keeps each "
                         "file's work beside its dub (DIR/STEM.LANG.work); dub the files one by one for it")
    return not single


def _dub_catalogue(args: argparse.Namespace, options: "DubOptions") -> int:
    from pathlib import Path

    from s3tvr.dub import catalogue as cat

    folder = Path(args.output)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"-o {folder} is a file: a catalogue (several inputs or languages) is dubbed into a folder")
    if not folder.parent.is_dir():
        raise InputError(f"-o {folder}: {folder.parent} does not exist")
    from s3tvr import files
    from s3tvr.dub import voices

    files.check_output(folder, "-o", folder=True)  # every dub, and catalogue.json, is written there
    if options.speakers_file:  # shared by every dub: refused now rather than by each
        files.check_output(options.speakers_file, "--speakers-file")
        voices.read_known(options.speakers_file)
    inputs, own = cat.without_own_outputs(cat.expand_inputs(args.input), args.to, folder, options.speakers_file)
    if own:
        log.info("skipped %d files this catalogue wrote into %s (dubs and their side files)", len(own), folder)
    if not inputs:
        raise InputError(f"every input is a file dubbed into {folder} before ({len(own)}): nothing new to dub; "
                         "give the originals")
    jobs = cat.plan(inputs, args.to, folder)
    configs = {lang: _load_config(args, args.src or "auto", lang) for lang in args.to}
    if args.src:  # a pair the models cannot make refused before any work (built, not loaded: cheap)
        from s3tvr.live.engine import build_backends

        for config in configs.values():
            build_backends(config)
    folder.mkdir(exist_ok=True)
    catalogue = cat.Catalogue(jobs, retries=args.retries)
    log.info("%d files x %d languages: %d to dub, %d already dubbed", len(jobs) // len(args.to), len(args.to),
             len(catalogue.todo()), len(jobs) - len(catalogue.todo()))
    with _RichProgress(enabled=not args.quiet) as progress:
        if args.ray:  # Ray imported only here
            from s3tvr.dub import on_ray

            on_ray.run(catalogue, configs, options, progress, args.voice, args.ray, args.workers, args.cpus_per_worker)
        else:
            cat.run_local(catalogue, cat.Worker(configs, options, args.voice), progress)
    catalogue.write(folder / "catalogue.json")
    print(cat.format_table(catalogue))
    log.info("wrote %s", folder / "catalogue.json")
    if catalogue.failed:
        raise TranslationFailed(f"{len(catalogue.failed)} of {len(jobs)} dubs failed (catalogue.json says why)")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    return _finetune_train(args) if args.step == "train" else _finetune_prepare(args)


def _finetune_prepare(args: argparse.Namespace) -> int:
    from s3tvr.finetune.prepare import PrepareOptions, Preparer
    from s3tvr.finetune.report import format_table

    lang = args.lang or ""
    config = _load_config(args, lang or "en", lang or "en")
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
    from s3tvr.weights.downloaded import download

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
    from s3tvr.latency.record import read_log
    from s3tvr.latency.report import format_sources, format_table, plot, summarize

    if args.plot:
        files.check_output(args.plot, "--plot")
    records = read_log(args.log)
    if not records:
        raise InputError(f"{args.log} holds no utterances: run s3tvr run --log {args.log} first")
    print(format_table(summarize(records)))
    if args.sources:
        print("\n" + format_sources(records))
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
