"""``s3tvr finetune train``: XTTS v2's GPT fine-tuned on a prepared dataset.

Wraps coqui-tts's GPT trainer recipe for XTTS v2 (``GPTTrainer``: the DVAE turns each clip into
audio codes, the GPT learns to predict them from the text and a conditioning slice of the same
speaker; the DVAE and the HiFi-GAN decoder stay frozen), with defaults for small data: a few
epochs, the recipe's low learning rate, and a stop when the eval loss has not improved for
``patience`` epochs. The output folder is what ``--xtts-dir`` loads:

    OUTPUT/model.pth, config.json, vocab.json   the fine-tuned model (the best eval loss)
    OUTPUT/voice/*.wav                          the dataset's clearest clips: the default voice
    OUTPUT/finetune.json                        base model, dataset, steps, losses, why it stopped
    OUTPUT/training/RUN/                        the trainer's checkpoints and logs (--resume)

It is the XTTS backend's trainer, so unlike the other features it imports that backend
(:mod:`s3tvr.backends.tts.xtts`: the checkpoint loading it shares) rather than only the kinds.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

from s3tvr import bounds, files
from s3tvr.bounds import Range
from s3tvr.errors import InputError, SetupError, brief
from s3tvr.finetune.prepare import DATASET_FILE
from s3tvr.languages import XTTS_CODES
from s3tvr.progress import Progress

log = logging.getLogger(__name__)

BASE_FILES = ("model.pth", "config.json", "vocab.json")
TRAINING_FILES = ("dvae.pth", "mel_stats.pth")  # the DVAE that makes audio codes, and its mel statistics
RESULT_FILE = "finetune.json"
VOICE_DIR = "voice"


@dataclass
class TrainOptions:
    epochs: Annotated[int, Range(1, 10000)] = 6
    max_steps: Optional[Annotated[int, Range(1)]] = None  # stop after this many steps (batches; a quick run)
    batch_size: Annotated[int, Range(1, 1024)] = 2
    grad_accum: Annotated[int, Range(1, 1024)] = 1
    lr: Annotated[float, Range(0, 1, above=True)] = 5e-6  # the recipe's: higher rates forget the base model's voices and languages
    patience: Annotated[int, Range(1, 1000)] = 2  # epochs without a better eval loss before stopping
    min_minutes: Annotated[float, Range(0)] = 1.0  # less training speech than this is refused
    workers: Annotated[int, Range(0, 256)] = 2  # data loader processes
    save_step: Annotated[int, Range(1)] = 500  # a checkpoint every this many steps, besides the end of each epoch
    resume: bool = False
    voice_s: Annotated[float, Range(1, 120)] = 12.0  # seconds of the clearest clips kept as the model's default voice

    def __post_init__(self) -> None:
        bounds.check(self)


@dataclass
class TrainResult:
    folder: Path
    summary: dict[str, Any] = field(default_factory=dict)


class _Stop(Exception):
    """Raised from a trainer callback to end training early (max steps, early stop)."""


def read_dataset(folder: Path, min_minutes: float) -> dict[str, Any]:
    info_path = folder / DATASET_FILE
    if not info_path.is_file():
        raise InputError(f"{folder} is not a prepared dataset (no {DATASET_FILE}): run `s3tvr finetune prepare` first")
    info = json.loads(info_path.read_text())
    if info["language"] not in XTTS_CODES:
        raise InputError(f"{folder} is in {info['language']!r}, which XTTS v2 does not speak: prepare recordings in one of "
                         f"{', '.join(XTTS_CODES)}")
    if info["clips_train"] < 2 or info["clips_eval"] < 1 or info["minutes_train"] < min_minutes:
        raise InputError(f"too little data to train: {folder} has {info['minutes_train']:.2f} min of training speech in "
                         f"{info['clips_train']} clips, "
                         f"fine-tuning needs at least {min_minutes:g} min (10 min or more works better): add recordings and "
                         f"run prepare again")
    return info


def check_base(base: Path) -> None:
    missing = [name for name in BASE_FILES if not (base / name).is_file()]
    if missing:
        raise SetupError(f"no XTTS v2 model in {base} ({', '.join(missing)} missing): run `s3tvr download xtts` or give --xtts-dir")
    missing = [name for name in TRAINING_FILES if not (base / name).is_file()]
    if missing:
        raise SetupError(f"{base} lacks {' and '.join(missing)}, which training needs: run `s3tvr download xtts-train`")


def train(dataset: str | Path, base: str | Path, output: str | Path, options: TrainOptions | None = None,
          progress: Progress | None = None) -> TrainResult:
    options = options or TrainOptions()
    progress = progress or Progress()
    dataset, base, output = Path(dataset), Path(base).expanduser(), Path(output)
    info = read_dataset(dataset, options.min_minutes)
    check_base(base)
    runs = output / "training"
    previous = _last_run(runs)
    if options.resume and previous is None:
        raise InputError(f"nothing to resume in {output}: run without --resume")
    if not options.resume:
        if (output / RESULT_FILE).exists():
            raise InputError(f"{output} already holds a fine-tuned model: choose another -o")
        if previous is not None:
            raise InputError(f"{output} holds an interrupted training run ({previous.name}): add --resume to continue it, "
                             f"or choose another -o")
        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise InputError(f"{output} already exists and is not empty: choose another -o")
    if not output.parent.is_dir():
        raise InputError(f"folder {output.parent} does not exist: create it or choose another -o")
    try:
        from trainer import Trainer, TrainerArgs
        from TTS.tts.datasets import load_tts_samples
        from TTS.tts.layers.xtts.trainer.gpt_trainer import GPTTrainer
    except ImportError:
        raise SetupError("training needs coqui-tts: ./setup.sh --stack (or pip install 's3tvr[xtts]')") from None

    from s3tvr.backends.tts.xtts import checkpoints_read_only

    config = _config(base, dataset, info, runs, options)
    try:
        with checkpoints_read_only():  # the base model.pth is the user's download: never rewritten
            model = GPTTrainer(config)
    except Exception as exc:
        raise SetupError(f"could not load XTTS v2 for training from {base} ({brief(exc)}): check that its files belong together") from None
    train_samples, eval_samples = load_tts_samples(config, eval_split=True)
    steps_per_epoch = math.ceil(len(train_samples) / options.batch_size)  # the trainer counts batches as steps
    watch = _Watch(options, progress.stage("train", options.max_steps or options.epochs * steps_per_epoch))
    created = not output.exists()
    try:
        trainer = Trainer(
            TrainerArgs(continue_path=str(previous) if options.resume else "", grad_accum_steps=options.grad_accum),
            config, output_path=str(runs), model=model, train_samples=train_samples, eval_samples=eval_samples,
            parse_command_line_args=False,
            callbacks={"on_train_step_end": watch.step, "on_epoch_end": watch.epoch_end})
        if options.resume:  # the trainer counts a restored run's steps one further (so as not to checkpoint again)
            watch.done = trainer.total_steps_done - 1
            log.info("resuming %s from step %d", previous.name, watch.done)
        watch.fit(trainer)
    except BaseException:
        if created and _last_run(runs) is None:  # nothing worth keeping: no half-made output folder
            shutil.rmtree(output, ignore_errors=True)
        raise
    summary = _export(trainer, base, dataset, info, output, options, watch)
    return TrainResult(output, summary)


def _config(base: Path, dataset: Path, info: dict[str, Any], runs: Path, options: TrainOptions) -> Any:
    """The recipe's trainer config, with the architecture and audio settings of the base model."""
    from TTS.config.shared_configs import BaseDatasetConfig
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.layers.xtts.trainer.gpt_trainer import GPTArgs, GPTTrainerConfig

    base_config = XttsConfig()
    base_config.load_json(str(base / "config.json"))
    arch = {k: v for k, v in base_config.model_args.to_dict().items() if k in GPTArgs.__dataclass_fields__}
    model_args = GPTArgs(**{
        **arch,
        "max_conditioning_length": 132300,  # 6 s: the conditioning slice, as in the recipe
        "min_conditioning_length": 66150,  # 3 s
        "max_wav_length": 255995,  # ~11.6 s
        "max_text_length": 200,
        "mel_norm_file": str(base / "mel_stats.pth"),
        "dvae_checkpoint": str(base / "dvae.pth"),
        "xtts_checkpoint": str(base / "model.pth"),
        "tokenizer_file": str(base / "vocab.json"),
        "gpt_use_masking_gt_prompt_approach": True,
    })
    config = GPTTrainerConfig(
        output_path=str(runs), run_name="xtts-finetune", project_name="s3tvr", dashboard_logger="tensorboard",
        model_args=model_args, audio=base_config.audio, languages=base_config.languages,
        epochs=options.epochs, batch_size=options.batch_size, eval_batch_size=options.batch_size, batch_group_size=48,
        num_loader_workers=options.workers, num_eval_loader_workers=min(options.workers, 1),
        print_step=50, plot_step=100, log_model_step=None, save_step=options.save_step, save_n_checkpoints=1,
        save_checkpoints=True, print_eval=False, run_eval=True, test_sentences=[],
        optimizer="AdamW", optimizer_wd_only_on_weights=True,
        optimizer_params={"betas": [0.9, 0.96], "eps": 1e-8, "weight_decay": 1e-2}, lr=options.lr,
        lr_scheduler="MultiStepLR", lr_scheduler_params={"milestones": [50000 * 18, 150000 * 18, 300000 * 18], "gamma": 0.5,
                                                         "last_epoch": -1})
    config.datasets = [BaseDatasetConfig(formatter="coqui", dataset_name="s3tvr", path=str(dataset.resolve()),
                                         meta_file_train=info["train"], meta_file_val=info["eval"],
                                         language=XTTS_CODES[info["language"]])]
    return config


class _Watch:
    """Trainer callbacks: progress, losses per epoch, the max-steps and early stops; and the fit
    loop itself, so that a stop or Ctrl-C saves a checkpoint instead of exiting the process
    (Trainer.fit calls sys.exit)."""

    def __init__(self, options: TrainOptions, tick: Any):
        self.options = options
        self.tick = tick
        self.epochs: list[dict[str, Any]] = []
        self.best = math.inf
        self.stale = 0
        self.stopped = "finished the epochs"
        self.done = 0  # steps (batches), those of a resumed run included

    def step(self, trainer: Any) -> None:
        self.done += 1
        self.tick()
        if self.options.max_steps and self.done >= self.options.max_steps:
            raise _Stop(f"reached --max-steps {self.options.max_steps}")

    def epoch_end(self, trainer: Any) -> None:
        eval_loss = _avg(trainer.keep_avg_eval, "avg_loss")
        self.epochs.append({"epoch": trainer.epochs_done + 1, "step": self.done,
                            "train_loss": _avg(trainer.keep_avg_train, "avg_loss"), "eval_loss": eval_loss})
        log.info("epoch %d: train loss %s, eval loss %s", trainer.epochs_done + 1, self.epochs[-1]["train_loss"], eval_loss)
        if eval_loss is None:
            return
        if eval_loss < self.best - 1e-4:
            self.best, self.stale = eval_loss, 0
        else:
            self.stale += 1
            if self.stale >= self.options.patience:
                raise _Stop(f"eval loss had not improved for {self.stale} epochs")

    def fit(self, trainer: Any) -> None:
        try:
            trainer._fit()  # fit() without its sys.exit on stop and interrupt
        except _Stop as stop:
            self.stopped = str(stop)
            log.info("stopping: %s", stop)
            if self.options.max_steps and not trainer.keep_avg_eval.avg_values:  # stopped within an epoch
                trainer.eval_epoch()
                trainer.save_best_model()
            trainer.save_checkpoint()
        except KeyboardInterrupt:
            trainer.save_checkpoint()
            log.warning("interrupted at step %d; the checkpoint is saved: run the same command with --resume to continue",
                        self.done)
            raise
        finally:
            trainer.dashboard_logger.finish()


def _avg(keep: Any, key: str) -> Optional[float]:
    value = (keep.avg_values if keep is not None else {}).get(key)
    return round(float(value), 4) if value is not None else None


def _last_run(runs: Path) -> Optional[Path]:
    found = [p for p in runs.glob("*/") if any(p.glob("*.pth"))] if runs.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _export(trainer: Any, base: Path, dataset: Path, info: dict[str, Any], output: Path, options: TrainOptions,
            watch: _Watch) -> dict[str, Any]:
    """The best checkpoint's XTTS weights (the trainer's DVAE and mel layers left out) beside
    the base model's config and vocabulary: a folder --xtts-dir loads."""
    import torch

    run = Path(trainer.output_path)
    best = sorted(run.glob("best_model*.pth"), key=lambda p: p.stat().st_mtime)
    checkpoint = best[-1] if best else sorted(run.glob("checkpoint_*.pth"), key=lambda p: p.stat().st_mtime)[-1]
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
    weights = {k[len("xtts."):]: v for k, v in state.items() if k.startswith("xtts.")}
    with files.atomic_write(output / "model.pth", flag="-o") as tmp:
        torch.save({"model": weights}, tmp)
    for name in ("config.json", "vocab.json", "speakers_xtts.pth"):
        if (base / name).is_file():
            files.copy_file(base / name, output / name, flag="-o")
    voice = output / VOICE_DIR
    voice.mkdir(exist_ok=True)
    clear = sorted((c for c in info["clips"] if not c["reason"]), key=lambda c: -(c["confidence"] or 0))
    total = 0.0
    for clip in clear:
        if total >= options.voice_s:
            break
        files.copy_file(dataset / clip["file"], voice / Path(clip["file"]).name, flag="-o")
        total += clip["end"] - clip["start"]
    summary = {"base": str(base), "dataset": str(dataset), "language": info["language"], "from_checkpoint": checkpoint.name,
               "steps": watch.done, "stopped": watch.stopped, "best_eval_loss": _avg_best(trainer),
               "epochs": watch.epochs, "minutes_trained_on": info["minutes_train"],
               "options": asdict(options)}
    files.write_json(output / RESULT_FILE, summary)
    for stale in run.glob("*.pth"):  # finished: the trainer's checkpoints (model + optimizer, GBs each) are done with
        stale.unlink()
    return summary


def _avg_best(trainer: Any) -> Optional[float]:
    best = trainer.best_loss
    value = best.get("eval_loss") if isinstance(best, dict) else best
    return round(float(value), 4) if value is not None and math.isfinite(value) else None
