"""The command line's arguments: every command's flags, declared once. Numeric flags take their
type, default and range from the option dataclass they fill, so the command line and the library
refuse the same values.

A command whose flags need its own modules (run: the backend table; dub and finetune: their option
dataclasses, whose modules load numpy and the models' code) declares them only when it is the
command given or its help is shown, so that ``s3tvr --help`` and the other commands never import them."""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from typing import Any, Callable, NoReturn, Optional, Sequence

from s3tvr.backends.device import DTYPES
from s3tvr.bounds import range_of
from s3tvr.languages import LANGUAGES  # XTTS v2's; the model stack covers them, the offline profile translates them into English


@dataclasses.dataclass(frozen=True)
class ConfigFlag:
    """A flag that is a shorthand for one configuration key: given, it is ``--set KEY=VALUE`` placed
    after every ``--set`` (so it wins over one of the same key), its value taken as given."""

    flag: str
    key: str
    switch: Any = None  # a flag without a value sets the key to this; None: to the flag's value

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


# Every flag that changes the configuration (docs/configuration.md lists them from here). The
# languages (run's LANG, --from, --to) become src_lang and tgt_lang the same way, after these.
CONFIG_FLAGS = (
    ConfigFlag("--device", "device"),
    ConfigFlag("--dtype", "dtype"),
    ConfigFlag("--input-device", "audio.input_device"),
    ConfigFlag("--output-device", "audio.output_device"),
    ConfigFlag("--full-duplex", "audio.full_duplex", switch=True),
    ConfigFlag("--fast", "audio.realtime", switch=False),
    ConfigFlag("--mode", "simultaneous.mode"),
    ConfigFlag("--virtual-mic", "audio.virtual_mic"),
    ConfigFlag("--listen-to", "audio.listen_to"),
    ConfigFlag("--duck", "audio.duck_db"),
    ConfigFlag("--xtts-dir", "tts.model_dir"),
    ConfigFlag("--xtts-config", "tts.config"),
    ConfigFlag("--deepspeed", "tts.deepspeed", switch=True),
    ConfigFlag("--seed", "tts.seed"),
)


def flag_overrides(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The (key, value) overrides the configuration flags given in ``args`` stand for, in
    CONFIG_FLAGS' order; a command without one of the flags, or a switch not given, adds nothing."""
    found = []
    for flag in CONFIG_FLAGS:
        given = getattr(args, flag.dest, None)
        if given is not None and given is not False:
            found.append((flag.key, given if flag.switch is None else flag.switch))
    return found


class _Parser(argparse.ArgumentParser):
    """argparse's errors in the form of every other error: one line, the cause, where to look.
    ``declare``: adds this (sub)command's flags when it is parsed or its help shown, not before."""

    def __init__(self, *args: Any, declare: Optional[Callable[[argparse.ArgumentParser], None]] = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._declare = declare

    def _declared(self) -> None:
        declare, self._declare = self._declare, None
        if declare is not None:
            declare(self)

    def parse_known_args(self, args: Optional[Sequence[str]] = None, namespace: Any = None) -> Any:
        self._declared()  # argparse parses a subcommand's own arguments here
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._declared()
        return super().format_usage()

    def format_help(self) -> str:
        self._declared()
        return super().format_help()

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


def build_parser() -> argparse.ArgumentParser:
    # The options every command that loads models shares, declared once.
    models = _Parser(add_help=False)
    group = models.add_argument_group("models")
    group.add_argument("--config", metavar="FILE",
                       help="a YAML config or preset: offline (CPU, bundled weights; the default), stack (NeMo ASR, NLLB MT, "
                            "XTTS voice cloning; the default with --xtts-dir) or fake (scripted, no models)")
    group.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="override any config key, e.g. vad.endpoint_ms=300 or asr.model=small (repeatable; a flag "
                            "that sets the same key, e.g. --device for device, wins; s3tvr config shows the result)")
    group.add_argument("--device", choices=["cpu", "cuda"], help="where models run (default: the preset's: cpu offline, cuda for stack)")
    group.add_argument("--dtype", choices=DTYPES, help="torch models' precision (auto: bfloat16 or float16 on CUDA, float32 on CPU)")

    p = _Parser(prog="s3tvr", description="Speech-to-speech translation in your own voice, live.")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more status on stderr (-vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("run", parents=[models], help="translate speech live: microphone (or a file) in, translated speech out",
                   formatter_class=argparse.RawDescriptionHelpFormatter, declare=_run_flags,
                   description="Listen in LANG and speak the translation. Each utterance's translation is printed on stdout;\n"
                               "its latency is appended to --log.")

    sub.add_parser("talk", parents=[models], help="two people, one device: each utterance's language detected (A or B), "
                                                  "translated into the other and spoken",
                   formatter_class=argparse.RawDescriptionHelpFormatter, declare=_talk_flags,
                   description="A conversation between a speaker of A and a speaker of B on one device. Whisper tells which of\n"
                               "the two each utterance is in; it is translated into the other and spoken in that language's\n"
                               "voice. Each utterance is printed on stdout with its direction ([3] es→en: …). Half duplex by\n"
                               "default: the microphone is closed while a translation plays (a loudspeaker); --full-duplex\n"
                               "keeps it open (headphones). Whole utterances only (sentence mode).",
                   epilog="examples:\n  s3tvr talk en es                               # microphone -> loudspeaker\n"
                          "  s3tvr talk en es --full-duplex                 # on headphones\n"
                          "  s3tvr talk es en --input chat.wav --output chat.translated.wav --log chat.jsonl")

    sub.add_parser(
        "config", parents=[models], help="print the configuration a command would use: every key, its range and meaning",
        formatter_class=argparse.RawDescriptionHelpFormatter, declare=_config_flags,
        description="Print, as YAML, the configuration that run (or serve, or dub with --for dub) would use with these\n"
                    "arguments: the preset, its into: changes for the target language, --set, then the flags (a flag\n"
                    "wins over a --set of the same key). Each key is followed by its range and what it means; the\n"
                    "backend sections hold every option of the chosen backend, defaults filled in. Give the file\n"
                    "back with --config FILE (and the same LANG and --to) to run with exactly this configuration.",
        epilog="examples:\n  s3tvr config es                                # the offline preset, Spanish into English\n"
               "  s3tvr config en --to es --set mt=apertium > my.yaml; s3tvr run en --to es --config my.yaml\n"
               "  s3tvr config en --to es --xtts-dir models/xtts_v2   # the model stack\n"
               "  s3tvr config es --to en --for dub                  # what a dub into English uses\n"
               "every key: docs/configuration.md; examples to copy: configs/")

    _serve_parsers(sub, models)

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

    sub.add_parser(
        "dub", parents=[models], help="dub a recording or video into another language, timed to the original",
        formatter_class=argparse.RawDescriptionHelpFormatter, declare=_dub_flags,
        description="Replace the speech of INPUT by its translation, each phrase timed to the original, the background\n"
                    "kept (the music separated from the old voice, or the original ducked: --background), the video\n"
                    "stream copied as it is. A video OUTPUT carries the translated and the source subtitles as tracks\n"
                    "tagged with their languages, the translation first and default (mov_text in .mp4/.m4v/.mov,\n"
                    "SubRip in .mkv, WebVTT in .webm). Writes beside OUTPUT: the same subtitles as files (.srt, .vtt),\n"
                    "an editable segments file (.segments.json; edit, then --resume) and a sync report (.sync.json,\n"
                    "also printed). --subtitles-only stops after the translation: the segments file and subtitle\n"
                    "files only, no dub (and no TTS); a later run with --resume and the same -o dubs from them.\n"
                    "Speakers: who speaks when is found from their voices (Resemblyzer embeddings, clustered; --speakers N\n"
                    "fixes the count); a phrase is one speaker's, and each speaker gets a voice: their own clone with\n"
                    "a cloning TTS (XTTS), else a distinct shipped voice (Kokoro's five styles; Piper has one). The\n"
                    "segments file names each phrase's speaker and holds a voices table: rename, merge (give phrases\n"
                    "the other speaker), pick a voice, then --resume re-speaks only what changed. The sync report\n"
                    "says how many speakers were found and how each was voiced.\n"
                    "A catalogue: several INPUTs, a folder, a glob or @LIST (one path a line), or several --to\n"
                    "languages, dubbed into the folder -o DIR as DIR/STEM.LANG.EXT; what is already dubbed is skipped,\n"
                    "a failed file is retried (--retries) then reported while the rest go on; a summary table is printed\n"
                    "and written to DIR/catalogue.json. Models load once, not per file. --ray spreads the files over a\n"
                    "Ray cluster's workers (pip install 's3tvr[ray]'; docs/ray.md).",
        epilog="examples:\n  s3tvr dub talk.mp4 --from es --to en -o talk.en.mp4        # offline: Whisper translate + Piper\n"
               "  s3tvr dub talk.mp4 --from en --to ru -o talk.ru.mp4 --xtts-dir models/xtts_v2   # the model stack, your voice\n"
               "  s3tvr dub speech.wav --to en -o speech.en.wav              # the language is detected\n"
               "  s3tvr dub talk.mp4 --from es --to en -o talk.en.mp4 --subtitles-only   # talk.en.en.srt, talk.en.es.srt …\n"
               "  s3tvr dub interview.mp4 --from en --to es -o interview.es.mp4 --speakers 2 --speakers-file show.speakers.json\n"
               "  s3tvr dub talks/ --from es --to en,fr -o dubbed/ --xtts-dir models/xtts_v2   # a catalogue, two languages\n"
               "  s3tvr dub @episodes.txt --from es --to en -o dubbed/ --ray auto   # on the Ray cluster in RAY_ADDRESS")

    _finetune_parser(sub, models)

    sub.add_parser("devices", help="list audio devices (indexes and names for --input-device/--output-device)")

    from s3tvr.weights.downloaded import GROUPS, REPOS

    width = max(map(len, REPOS))

    dl = sub.add_parser("download", help="fetch model weights into models/ (the stack: XTTS v2, NeMo ASR, NLLB; larger Whispers)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Fetch weights from Hugging Face at pinned revisions into models/ (or $S3TVR_MODELS). "
                                    "An interrupted download resumes when run again.",
                        epilog="models:\n" + "\n".join(f"  {r.key:<{width}} {r.repo_id} @ {r.revision} ({r.size})" for r in REPOS.values())
                               + f"\n  {'all':<{width}} " + " + ".join(GROUPS["all"]))
    dl.add_argument("models", nargs="+", metavar="MODEL", help="xtts, asr-en, asr-es, mt, whisper-small, all …")
    dl.add_argument("--accept-license", action="store_true", help="accept the XTTS v2 license (CPML, non-commercial) without asking")

    rep = sub.add_parser("report", help="latency table (and plot) from a log written by run --log")
    rep.add_argument("log", metavar="LOG", help="the JSON Lines latency log")
    rep.add_argument("--plot", metavar="PNG", help="also draw the latency distribution and per-stage bars")
    rep.add_argument("--sources", action="store_true",
                     help="also one row per source utterance: its field metrics and EndOffset's parts")
    return p


def _run_flags(run: argparse.ArgumentParser) -> None:
    from s3tvr.backends import registry  # imports every backend's module for their options' defaults

    run.epilog = ("backends (choose with --set asr.backend=NAME, mt=NAME, tts.backend=NAME):\n" + registry.describe()
                  + "\n\nexamples:\n  s3tvr run es                                   # microphone -> speaker\n"
                    "  s3tvr run es --input talk.ogg --output talk.en.wav --log latency.jsonl\n"
                    "  s3tvr run es --set vad.endpoint_ms=300 --set asr.model=small\n"
                    "  s3tvr run en --xtts-dir models/xtts_v2 --device cuda          # the model stack: NeMo, NLLB, XTTS\n"
                    "  s3tvr run en --config stack --set mt=marian --voice me.wav    # Marian MT, a fixed reference voice")
    run.add_argument("lang", choices=LANGUAGES, metavar="LANG", help="the language spoken: " + ", ".join(LANGUAGES))
    run.add_argument("--to", choices=LANGUAGES, metavar="LANG", help="the language to speak (default: es for en, en otherwise)")
    run.add_argument("--input", metavar="FILE", help="translate a file (audio, or a video's audio track) instead of the microphone")
    run.add_argument("--fast", action="store_true",
                     help="with --input: as fast as possible instead of real-time pace (sets audio.realtime=false)")
    run.add_argument("--output", metavar="FILE", help="write the translation to a WAV file (placed on the input's timeline)")
    run.add_argument("--log", metavar="FILE", help="append one JSON line per utterance with its latency (default: none)")
    run.add_argument("--record-dir", metavar="DIR", help="save each utterance's input and translated audio here")
    run.add_argument("--captions", metavar="FILE", help=CAPTIONS_HELP)
    _glossary_flag(run, "")
    _live_flags(run)
    _voice_arguments(run, voice_default="learned from your first utterances", session=True)


CAPTIONS_HELP = ("write live captions as they are spoken: the translation into FILE (.vtt: WebVTT, .srt: SubRip), "
                 "the source beside it as NAME.src.EXT (out.vtt and out.src.vtt); one cue per utterance (simultaneous mode: "
                 "per clause), on the input's timeline, appended and flushed as each is logged so another program can follow "
                 "them. Into English with Whisper's translate task it adds a transcript pass for the source (asr.transcript)")


def _talk_flags(talk: argparse.ArgumentParser) -> None:
    talk.add_argument("lang_a", choices=LANGUAGES, metavar="A", help="one person's language: " + ", ".join(LANGUAGES))
    talk.add_argument("lang_b", choices=LANGUAGES, metavar="B", help="the other's")
    talk.add_argument("--input", metavar="FILE", help="translate a recorded conversation (audio, or a video's audio track) "
                                                      "instead of the microphone")
    talk.add_argument("--fast", action="store_true",
                      help="with --input: as fast as possible instead of real-time pace (sets audio.realtime=false)")
    talk.add_argument("--output", metavar="FILE", help="write the translations to a WAV file (placed on the input's timeline)")
    talk.add_argument("--log", metavar="FILE", help="append one JSON line per utterance, its direction and latency (default: none)")
    talk.add_argument("--captions", metavar="FILE", help=CAPTIONS_HELP)
    _glossary_flag(talk, "; A's words into B's language (B's turns go without it)")
    _device_flags(talk)


def _live_flags(parser: argparse.ArgumentParser) -> None:
    """run's flags that change the configuration (config declares them too)."""
    _device_flags(parser)
    _call_flags(parser, sets=True)
    parser.add_argument("--mode", choices=["auto", "sentence", "simultaneous"],
                        help="sentence: translate each utterance once the speaker pauses; simultaneous: clause by clause "
                             "while the speaker goes on; auto (the default): simultaneous where this machine's recognition "
                             "passes keep pace (one is timed when the models load), else sentence (sets simultaneous.mode)")


def _device_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-device", metavar="DEV",
                        help="microphone: index or part of the name (see s3tvr devices), or pulse:NAME for a PulseAudio/PipeWire "
                             "source, an output's monitor included (sets audio.input_device)")
    parser.add_argument("--output-device", metavar="DEV", help="speaker: index or part of the name (sets audio.output_device)")
    parser.add_argument("--full-duplex", action="store_true",
                        help="keep listening while the translation plays (headphones; sets audio.full_duplex)")


def _call_flags(parser: argparse.ArgumentParser, sets: bool) -> None:
    """The flags that put s3tvr into a call, for run (``sets``: they set audio.* keys) and the client."""
    from s3tvr.config import AudioConfig

    def key(name: str) -> str:
        return f" (sets audio.{name})" if sets else ""

    call = parser.add_argument_group("in a call (Linux: PulseAudio or PipeWire; docs/call.md)")
    call.add_argument("--virtual-mic", nargs="?", const="s3tvr", metavar="NAME",
                      help="speak the translation into a new microphone named NAME (default s3tvr) that Zoom, Meet, "
                           "Teams, Discord or OBS can pick, instead of the speaker; removed when s3tvr ends" + key("virtual_mic"))
    call.add_argument("--listen-to", metavar="APP",
                      help="translate what the program APP plays (e.g. zoom, firefox) instead of the microphone; you hear "
                           "its original under the translation, at --duck" + key("listen_to"))
    _number(call, "--duck", AudioConfig, "duck_db", metavar="DB", default=None if sets else AudioConfig.duck_db,
            help="with --listen-to, the original's level under the translation, in dB (default -15; -90 silences it)"
                 + key("duck_db"))


def _config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lang", nargs="?", choices=[*LANGUAGES, "auto"], metavar="LANG",
                        help="the language spoken: " + ", ".join(LANGUAGES) + "; auto: detected (dub without --from); "
                             "default: en for --to other than en, else es")
    parser.add_argument("--to", choices=LANGUAGES, metavar="LANG", help="the language to speak (default: es for en, en otherwise)")
    parser.add_argument("--for", dest="purpose", choices=["run", "serve", "dub"], default="run",
                        help="the command whose configuration to print (dub: with the preset's dub: changes; default run)")
    parser.add_argument("--fast", action="store_true", help="as run --fast: a file as fast as possible (sets audio.realtime=false)")
    _live_flags(parser)
    _xtts_flags(parser.add_argument_group("voice cloning (XTTS v2, the stack preset)"))


def _dub_flags(dub: argparse.ArgumentParser) -> None:
    from s3tvr.dub.dubber import BACKGROUNDS, DubOptions

    dub.add_argument("input", nargs="+", metavar="INPUT",
                     help="an audio or video file ffmpeg reads; for a catalogue, several, a folder, a glob, or @LIST "
                          "(a file naming one input a line)")
    dub.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                     help="the dubbed file: a video (.mp4 .m4v .mkv .mov .webm) for a video input, or audio (.wav .flac "
                          ".ogg); with --subtitles-only, any of these names the subtitle files' stem (talk.en.mp4: "
                          "talk.en.en.srt …). For a catalogue: the folder of the dubs (made if missing)")
    dub.add_argument("--to", required=True, type=_languages, metavar="LANG[,LANG…]",
                     help="the language to dub into; several (en,fr) make a catalogue: one dub per language")
    dub.add_argument("--from", dest="src", metavar="LANG", help="the language spoken (default: detected)")
    _number(dub, "--max-tempo", DubOptions, "max_tempo", metavar="X",
            help="never play a phrase faster than this; longer ones are cut and reported")
    dub.add_argument("--background", choices=BACKGROUNDS,
                     help="keep: the original's music and ambience under the dub, its voice removed (Spleeter "
                          "separation, pip install 's3tvr[separate]'); duck: the whole original, voice and music, "
                          "turned down under the dub (--duck-db). Default: keep where the separator is installed")
    _number(dub, "--duck-db", DubOptions, "duck_db", metavar="DB",
            help="with --background duck: level of the original under the dub; -90 removes it")
    _number(dub, "--max-phrase", DubOptions, "max_phrase_s", metavar="S", help="longest phrase in seconds")
    dub.add_argument("--speakers", type=int, metavar="N",
                     help="how many people speak: each gets a voice of their own (default: found from their voices; "
                          "1: one voice for all). Refused with --resume: edit the segments file's voices table instead")
    dub.add_argument("--speakers-file", metavar="FILE",
                     help="known speakers (names, voices, voice prints) shared by the files of a catalogue: a speaker "
                          "heard again keeps their name and voice; new ones are added. JSON you may edit")
    dub.add_argument("--no-subtitles", action="store_true", help="no subtitles: no .srt/.vtt files, no tracks in the video")
    dub.add_argument("--subtitle-speakers", action="store_true",
                     help="label each subtitle with its speaker where the phrases name one (\"NAME: \"; WebVTT <v NAME>)")
    dub.add_argument("--subtitles-only", action="store_true",
                     help="listen and translate, then write only the segments file and the subtitle files: no dub, no "
                          "TTS (with --resume: the subtitles of the edited segments file)")
    dub.add_argument("--resume", action="store_true", help="re-render from the edited segments file; only changed phrases")
    dub.add_argument("--work-dir", metavar="DIR", help="where stage results are cached (default: OUTPUT.work)")
    _glossary_flag(dub, "; for one --to language")
    _voice_arguments(dub, voice_default="the cleanest 12 s of the original", session=False)
    batch = dub.add_argument_group("a catalogue (several inputs or languages)")
    batch.add_argument("--retries", type=_count, default=1, metavar="N",
                       help="try a failed file again N times before reporting it (default: 1; a bad input is not retried)")
    batch.add_argument("--ray", metavar="auto|ADDRESS",
                       help="dub on a Ray cluster: auto joins the one RAY_ADDRESS names, else starts one on this machine; "
                            "ADDRESS: the head's HOST:PORT. Each worker loads the models once. -o must be on storage every node reaches")
    batch.add_argument("--workers", type=_count, metavar="N",
                       help="with --ray: how many workers (default: one per GPU, else one per --cpus-per-worker CPUs)")
    batch.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="N", help="with --ray: CPUs each worker holds (default: 1)")


def _languages(text: str) -> list[str]:
    """--to: one language, or several separated by commas."""
    langs = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in langs if t not in LANGUAGES]
    if bad or not langs:
        raise argparse.ArgumentTypeError(f"{', '.join(bad) or repr(text)}: choose from {', '.join(LANGUAGES)}")
    return list(dict.fromkeys(langs))


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0, 1, 2 …)")
    return value


def _finetune_parser(sub: argparse._SubParsersAction, models: argparse.ArgumentParser) -> None:
    ft = sub.add_parser("finetune", help="fine-tune XTTS v2 on a speaker's recordings: prepare a dataset, then train",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="A cloned voice closer to the speaker than zero-shot cloning, in two steps.",
                        epilog="examples:\n  s3tvr finetune prepare recordings/ --speaker-ref me.wav -o dataset/\n"
                               "  s3tvr finetune train dataset/ --xtts-dir models/xtts_v2 -o models/xtts_me/\n"
                               "  s3tvr run en --xtts-dir models/xtts_me                     # speaks with the result")
    steps = ft.add_subparsers(dest="step", required=True, metavar="STEP")
    steps.add_parser(
        "prepare", parents=[models], help="recordings -> a clean training set (the target speaker only, denoised, transcribed)",
        declare=_prepare_flags,
        description="Cut recordings at pauses into 1-11.5 s clips; keep the clips in the voice of --speaker-ref that are "
                    "clean enough (SNR, clipping, denoising that would eat speech, ASR confidence, enough speech); "
                    "write them loudness-normalised at 22.05 kHz with coqui-tts metadata (train/eval), dataset.json "
                    "(what was dropped and why) and lengths.png.")
    steps.add_parser(
        "train", help="fine-tune XTTS v2's GPT on a prepared dataset", declare=_train_flags,
        description="Fine-tune XTTS v2's GPT with coqui-tts's recipe (the DVAE and decoder stay as they are). The best "
                    "checkpoint by eval loss becomes a folder --xtts-dir loads, with the dataset's clearest clips as its "
                    "default voice. Trains on the GPU when there is one. Ctrl-C saves a checkpoint; --resume goes on.")


def _prepare_flags(prep: argparse.ArgumentParser) -> None:
    from s3tvr.finetune.prepare import PrepareOptions

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


def _train_flags(tr: argparse.ArgumentParser) -> None:
    from s3tvr.finetune.train import TrainOptions

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


def _serve_parsers(sub: argparse._SubParsersAction, models: argparse.ArgumentParser) -> None:
    from s3tvr.serve import ServeOptions

    srv = sub.add_parser(
        "serve", parents=[models], help="translate for browsers and clients over a WebSocket: one engine, many sessions",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load the models once and serve the web page at / and a WebSocket at /ws: each connection is a\n"
                    "session with its own languages (any pair the models make) and latency log (docs/serve.md, the WebSocket protocol).",
        epilog="examples:\n  s3tvr serve                                    # http://127.0.0.1:8000/ on this machine\n"
               "  s3tvr serve --host 0.0.0.0 --token \"$(openssl rand -hex 16)\" --log-dir logs/\n"
               "  s3tvr serve --from en --to es --xtts-dir models/xtts_v2      # the model stack, each client's own voice\n"
               "  s3tvr serve --from en --to es --talk            # two people at one browser, each heard in the other's language\n\n"
               "who may connect: on 127.0.0.1 (the default) without a token, any program of this machine's users\n"
               "and this server's own page; on another --host, anyone who reaches the port: give it a --token. Web\n"
               "pages of other sites are refused (1008) whatever the host unless named with --allow-origin; so is\n"
               "the server's own page opened by a host name (not an address or localhost) when there is no token.\n\n"
               "for whoever runs it, no token asked: GET /healthz (200 while the process serves), GET /readyz (200\n"
               "once the models are loaded and a session's place is free, else 503 \"loading\" or \"full: N of N\n"
               "sessions\"), GET /metrics (Prometheus: s3tvr_sessions_active, s3tvr_sessions_total,\n"
               "s3tvr_refusals_total{reason}, s3tvr_closes_total{code}, s3tvr_first_audio_seconds,\n"
               "s3tvr_end_offset_seconds, s3tvr_stage_seconds{stage}; counts and times only, no text or audio)")
    srv.add_argument("--host", default=ServeOptions.host, help=f"address to listen on (default {ServeOptions.host}: this machine only)")
    _number(srv, "--port", ServeOptions, "port", metavar="N", help="TCP port")
    srv.add_argument("--from", dest="src", default="es", choices=LANGUAGES, metavar="LANG",
                     help="the models' source language (default es); sessions may ask for other pairs they make")
    srv.add_argument("--to", choices=LANGUAGES, metavar="LANG", help="the models' target language (default: es for en, en otherwise)")
    srv.add_argument("--talk", action="store_true",
                     help="conversations between --from and --to, as s3tvr talk holds them: each utterance's language is "
                          "detected and it is translated into the other; the page's captions name each direction")
    srv.add_argument("--token", metavar="TOKEN",
                     help="clients must give this token (default: $S3TVR_TOKEN; none: anyone who reaches the port may use it; "
                          "an empty one is refused)")
    srv.add_argument("--allow-origin", dest="allow_origins", action="append", default=[], metavar="ORIGIN",
                     help="let web pages of another site use the server (repeatable): an exact origin such as "
                          "https://app.example:8443 (behind a proxy: the public one); null for pages with no origin "
                          "(file:// pages, sandboxed iframes: any site can make one); or * for any page on the web "
                          "(dangerous: any site the user visits could drive it). The server's own pages, and clients "
                          "that send no Origin (s3tvr client, scripts), are always let in")
    srv.add_argument("--share-voices", action="store_true",
                     help="let clients speak in voices saved by other owners (?speaker=NAME): each voice belongs to the "
                          "token, or the local user, that saved it; shared ones are used as saved, never learned further")
    _number(srv, "--max-sessions", ServeOptions, "max_sessions", metavar="N", help="sessions at once; more are refused until one ends")
    srv.add_argument("--log-dir", metavar="DIR", help="write each session's latency log to DIR/SESSION.jsonl")
    _glossary_flag(srv, "; every session's unless it gives its own (?glossary=CSV, from the page too), for --from -> --to")
    _number(srv, "--max-ahead", ServeOptions, "max_ahead_s", metavar="S", help="seconds a client may send ahead of real time")
    _number(srv, "--max-unread", ServeOptions, "max_unread_s", metavar="S",
            help="seconds of translated speech a client may leave unread before it is dropped")
    _voice_arguments(srv, voice_default="learned from each session's first utterances", session=False)
    ray = srv.add_argument_group("replicas on a Ray cluster (docs/ray.md)")
    ray.add_argument("--ray", metavar="ADDRESS", help="serve as replicas on this Ray cluster (auto: the one on this machine); "
                                                     "this process routes each session to a replica with room")
    ray.add_argument("--replicas", type=int, metavar="N",
                     help="replicas, each one engine with its own --max-sessions (default 2)")
    ray.add_argument("--replica-gpus", type=float, metavar="G", help="GPUs each replica asks of the cluster (default 0)")

    cl = sub.add_parser(
        "client", help="translate a file or the microphone through an s3tvr serve server",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stream speech to a server started with s3tvr serve and play or write its translation. Each\n"
                    "utterance's text and translation are printed on stdout as they arrive, then a summary.",
        epilog="examples:\n  s3tvr client ws://127.0.0.1:8000/ws --from es --to en --input talk.ogg --output talk.en.wav\n"
               "  s3tvr client ws://gpu-box:8000/ws --from en --to de --token \"$S3TVR_TOKEN\"    # microphone -> speaker")
    cl.add_argument("url", metavar="URL", help="the server's WebSocket, ws://HOST:PORT/ws")
    cl.add_argument("--from", dest="src", required=True, metavar="LANG", help="the language spoken (ISO 639-1, e.g. es)")
    cl.add_argument("--to", required=True, metavar="LANG", help="the language to hear (e.g. en)")
    cl.add_argument("--input", metavar="FILE", help="stream a file (audio, or a video's audio track) at real-time pace, not the microphone")
    cl.add_argument("--output", metavar="FILE", help="write the translation to a WAV file instead of playing it")
    cl.add_argument("--token", default=os.environ.get("S3TVR_TOKEN") or None, metavar="TOKEN",
                    help="the server's token (default: $S3TVR_TOKEN)")
    cl.add_argument("--speaker", metavar="NAME", help="a voice-cloning server keeps the voice it learns of you under NAME")
    cl.add_argument("--input-device", metavar="DEV", help="microphone: index or part of the name (see s3tvr devices), or "
                                                           "pulse:NAME for a PulseAudio/PipeWire source")
    cl.add_argument("--output-device", metavar="DEV", help="speaker: index or part of the name")
    cl.add_argument("--captions", metavar="FILE", help="write live captions as the server logs each utterance: the translation "
                                                      "into FILE (.vtt or .srt), the source beside it as NAME.src.EXT, times on "
                                                      "the stream's timeline (into English with Whisper's translate task the "
                                                      "server needs --set asr.transcript=true for the source)")
    _glossary_flag(cl, "; this session's, instead of the server's (at most 50 terms; the server's --glossary takes more)")
    _call_flags(cl, sets=False)


def _glossary_flag(parser: argparse.ArgumentParser, more: str) -> None:
    parser.add_argument("--glossary", metavar="FILE",
                        help="words you choose (docs/glossary.md): a CSV with the header source,target,pronunciation,keep "
                             "(or YAML with those keys): recognised, translated as target (keep: left as written) and "
                             "pronounced as pronunciation" + more)


def _voice_arguments(parser: argparse.ArgumentParser, voice_default: str, session: bool) -> None:
    """The voice-cloning flags run and dub share (XTTS v2, the stack preset)."""
    group = parser.add_argument_group("voice cloning (XTTS v2, the stack preset)")
    _xtts_flags(group)
    group.add_argument("--voice", action="append", default=[], metavar="FILE",
                       help=f"a recording of the speaker to clone (repeatable: several clips of one person); default: {voice_default}")
    if session:
        group.add_argument("--speaker", metavar="NAME",
                           help="keep the voice learned in this session under NAME and start from it next time")
    else:
        parser.set_defaults(speaker=None)


def _xtts_flags(group: Any) -> None:
    """The XTTS model's flags: tts options (CONFIG_FLAGS), unlike the voice, which is the session's."""
    group.add_argument("--xtts-dir", metavar="PATH", help="XTTS v2 folder with model.pth and vocab.json (s3tvr download "
                                                          "xtts): speak in your own voice; selects the stack preset (sets tts.model_dir)")
    group.add_argument("--xtts-config", metavar="PATH",
                       help="XTTS v2 config.json (default: config.json in --xtts-dir; sets tts.config)")
    group.add_argument("--deepspeed", action="store_true",
                       help="DeepSpeed inference kernels for XTTS's GPT (CUDA; pip install deepspeed; sets tts.deepspeed)")
    group.add_argument("--seed", type=int, metavar="N", help="make XTTS's sampling reproducible (sets tts.seed)")
