"""TTS with Coqui XTTS v2 (coqui-tts): the translation spoken in the speaker's own voice, streamed.

The voice (GPT conditioning latents and the speaker embedding) belongs to a session
(:meth:`Backend.new_voice`) and is computed once per speaker: from recordings of the speaker,
cached on disk by their content, or else learned from the session's own speech: from the first
utterance, refined as more speech is heard (each time the heard speech doubles, up to
``learn_s``), never per utterance. One loaded model serves every session's voice. Text goes to
the model in sentences under XTTS's per-language character limit, so nothing is truncated, and
every streamed chunk goes to playback as it comes.

What the real v2.0.3 checkpoint needs beyond coqui-tts's defaults: its model.pth holds a pickled
config, which coqui-tts would rewrite in place on first load (read here, never written); its
config.json's sampling and conditioning settings (repetition_penalty 5.0, 4 s conditioning chunks,
each reference clip cut to max_ref_len) rule over coqui-tts's function defaults; Chinese and
Japanese need their romanisers installed, and Hindi digits are spelled here (num2words has no
Hindi).
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import importlib.util
import json
import logging
import os
import re
import tempfile
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional, Sequence

import numpy as np

from s3tvr import files
from s3tvr.audio import SAMPLE_RATE
from s3tvr.audio.decode import load_audio
from s3tvr.backends.device import torch_dtype
from s3tvr.backends.kinds import TtsBackend, VoiceNotYours, voice_clips
from s3tvr.bounds import Range
from s3tvr.errors import InputError, SetupError, brief
from s3tvr.languages import XTTS_CHAR_LIMITS, XTTS_CODES
from s3tvr.text import split_to_limit

log = logging.getLogger(__name__)

# What coqui-tts's text cleaning imports for a language, beyond its own dependencies.
ROMANISERS = {"zh": ("pypinyin", "pypinyin"), "ja": ("cutlet", "cutlet 'fugashi[unidic-lite]'")}

COND_RATE = 22050  # XTTS computes its conditioning at this rate
MIN_VOICE_S = 0.35  # XTTS ignores conditioning audio under a third of a second


@dataclass
class Config:
    model_dir: str = "models/xtts_v2"  # folder with model.pth, vocab.json (s3tvr download xtts)
    config: str = ""  # config.json (default: the one in model_dir)
    voice_cache: str = ""  # where voices are cached (default ~/.cache/s3tvr/voices)
    learn_s: Annotated[float, Range(0, 600)] = 30.0  # session voice: refine it until this much speech was heard
    deepspeed: bool = False  # DeepSpeed's inference kernels for the GPT (CUDA, pip install deepspeed)
    stream_chunk_size: Annotated[int, Range(1, 400)] = 20  # GPT tokens per streamed chunk: fewer = first audio sooner
    temperature: Optional[Annotated[float, Range(0, 2, above=True)]] = None  # default: the checkpoint's config.json (0.75)
    speed: Annotated[float, Range(0.5, 2)] = 1.0  # >1 speaks faster (times the lag control's rate)
    seed: Optional[Annotated[int, Range(0, 2**32 - 1)]] = None  # the same seed, text and voice give the same audio


class Backend(TtsBackend):
    backend = "xtts"
    speaking_rate = True
    clones_voice = True

    def __init__(self, config: Config, src_lang: str, tgt_lang: str, device: str = "cpu", dtype: str = "auto"):
        super().__init__(src_lang, tgt_lang)
        self.config = config
        self.device = device
        self.dtype_name = dtype
        self.model_dir = Path(config.model_dir).expanduser()
        self.config_path = Path(config.config).expanduser() if config.config else self.model_dir / "config.json"
        if not (self.model_dir / "model.pth").is_file():
            raise SetupError(f"no XTTS checkpoint (model.pth) in {self.model_dir}: run `python xtts_v2_download.py` "
                             f"(or s3tvr download xtts), or point --xtts-dir at the folder")
        if not self.config_path.is_file():
            raise SetupError(f"XTTS config {self.config_path} not found: give --xtts-config PATH/config.json")
        self.own_voice = sorted((self.model_dir / "voice").glob("*.wav"))  # a fine-tuned model's speaker (s3tvr finetune train)
        if config.deepspeed and device != "cuda":
            raise InputError("--deepspeed needs --device cuda")
        self.cache_dir = Path(config.voice_cache).expanduser() if config.voice_cache else Path.home() / ".cache/s3tvr/voices"
        from TTS.tts.configs.xtts_config import XttsConfig

        self.xtts_config = XttsConfig()
        try:
            self.xtts_config.load_json(str(self.config_path))
        except Exception as exc:
            raise SetupError(f"XTTS config {self.config_path} is not an XTTS config ({exc.__class__.__name__}): "
                             f"give the config.json that came with the checkpoint") from None
        if tgt_lang in ROMANISERS:
            module, packages = ROMANISERS[tgt_lang]
            if importlib.util.find_spec(module) is None:
                raise SetupError(f"XTTS needs {module} to speak {tgt_lang}: pip install {packages} (or pip install 's3tvr[xtts]')")
        spoken = set(self.xtts_config.languages)
        self._languages = frozenset(lang for lang, code in XTTS_CODES.items() if code in spoken)
        self.sample_rate = int(self.xtts_config.model_args.output_sample_rate)
        self.amp_dtype: Any = None  # half precision for the GPT on CUDA (None: float32)
        self.model: Any = None
        self.model_key = ""

    @property
    def languages(self) -> frozenset[str]:
        return self._languages

    def setup(self) -> None:
        import torch

        if self.config.deepspeed:
            try:
                import deepspeed  # noqa: F401
            except ImportError:
                raise SetupError("--deepspeed needs DeepSpeed: pip install deepspeed; it compiles its kernels on first use, "
                                 "which needs the CUDA toolkit (nvcc) of torch's CUDA version") from None
        dtype = torch_dtype(self.dtype_name, self.device)
        self.amp_dtype = dtype if self.device == "cuda" and dtype != torch.float32 else None
        from TTS.tts.models.xtts import Xtts

        try:
            self.model = Xtts(self.xtts_config)  # what Xtts.init_from_config does (deprecated in coqui-tts 0.28)
            with checkpoints_read_only():
                self.model.load_checkpoint(self.xtts_config, checkpoint_dir=str(self.model_dir), eval=True,
                                           use_deepspeed=self.config.deepspeed)
        except Exception as exc:
            raise SetupError(f"could not load XTTS from {self.model_dir} ({brief(exc)}): check that model.pth and config.json "
                             "belong together") from None
        _pass_the_cache_by_its_old_name(self.model.gpt.gpt_inference)
        self.model.to(self.device)
        if self.amp_dtype is not None:
            _decode_in_float32(self.model.hifigan_decoder)
        self.model_key = files.file_key(self.model_dir / "model.pth")

    def autocast(self) -> Any:
        """Half precision on CUDA through autocast: the GPT's matmuls in half precision, the rest as trained."""
        import torch

        return torch.autocast("cuda", dtype=self.amp_dtype) if self.amp_dtype is not None else nullcontext()

    def sampling(self) -> dict[str, Any]:
        """The GPT's sampling settings: the checkpoint's config.json, not inference_stream's defaults
        (repetition_penalty 10.0 there, 5.0 in XTTS v2's config)."""
        c = self.xtts_config
        return {"temperature": c.temperature if self.config.temperature is None else self.config.temperature,
                "length_penalty": c.length_penalty, "repetition_penalty": c.repetition_penalty,
                "top_k": c.top_k, "top_p": c.top_p}

    def check_voice(self, clips: Sequence[str | Path] = (), speaker: str = "", owner: str = "", share: bool = False) -> list[Path]:
        paths = super().check_voice(clips, speaker)
        if speaker and not paths:  # a named voice (clips, when given, are the voice: the name is not used)
            VoiceOwners(self.cache_dir).check(speaker, owner or local_owner(), share)
        return paths

    def new_voice(self, clips: Sequence[Path] = (), speaker: str = "", owner: str = "", share: bool = False) -> "Voice":
        """A session's voice: ``clips`` of the speaker, else a fine-tuned model's own speaker, else
        learned from the session's speech (kept under ``speaker`` when named, for its ``owner``:
        TtsBackend.new_voice)."""
        if not clips and not speaker and self.own_voice:
            log.info("voice: the fine-tuned speaker's clips in %s", self.model_dir / "voice")
            clips = self.own_voice
        return Voice(self.model, self.xtts_config, self.cache_dir, self.model_key, self.config.learn_s, clips, speaker,
                     owner=owner or local_owner(), share=share)

    def speak(self, text: str, voice: Optional["Voice"] = None, speech: Optional[np.ndarray] = None, rate: float = 1.0, *,
              utt_id: int = 0) -> Iterator[np.ndarray]:
        """Streamed in ``voice`` (from :meth:`new_voice`, required), which learns from ``speech``
        (the utterance's own, 16 kHz) while it is still learning the speaker."""
        import torch

        if not re.search(r"\w", text):
            return
        if voice is None:
            raise InputError("XTTS was given no voice: a session passes one from new_voice()")
        latents, embedding = voice.for_utterance(speech)
        if self.config.seed is not None:
            torch.manual_seed(self.config.seed)
        if self.tgt_lang == "hi":
            text = spell_hindi_numbers(text)
        with torch.inference_mode(), self.autocast():
            for piece in split_to_limit(text, XTTS_CHAR_LIMITS[self.tgt_lang]):
                for wav in self.model.inference_stream(
                        piece, XTTS_CODES[self.tgt_lang], latents, embedding,
                        stream_chunk_size=self.config.stream_chunk_size, **self.sampling(),
                        speed=self.config.speed * rate, enable_text_splitting=False):
                    yield wav.float().cpu().numpy().astype(np.float32)

    def cleanup(self) -> None:
        self.model = None


class Voice:
    """The speaker's conditioning, computed once and cached; from clips, or learned from the session."""

    def __init__(self, model: Any, xtts_config: Any, cache_dir: Path, model_key: str, learn_s: float,
                 clips: Sequence[Path], speaker: str, owner: str = "", share: bool = False):
        self.model = model
        self.xtts_config = xtts_config
        self.learn_s = learn_s
        self.heard: list[np.ndarray] = []  # session speech at 16 kHz, up to learn_s
        self.heard_s = 0.0
        self.next_at: Optional[float] = 0.0  # refine once this much speech was heard; None: the voice is final
        self.cond: Optional[tuple[Any, Any]] = None
        self.cache_file: Optional[Path] = None
        clips = voice_clips(clips)
        if clips:
            digest = hashlib.sha1(model_key.encode())
            for clip in clips:
                digest.update(clip.read_bytes())
            self.cache_file = cache_dir / f"clips-{digest.hexdigest()[:16]}.pt"
            self.next_at = None  # clips are the voice: never refined from the session
            if self._load() is None:
                try:
                    self.cond = self._condition([load_audio(c, COND_RATE) for c in clips])
                except RuntimeError as exc:  # XTTS: "reference audio too short"
                    raise InputError(f"cannot clone the voice of {', '.join(map(str, clips))}: {exc} "
                                     "Give longer recordings (6 s or more is best)") from None
                self._save(seconds=0.0)
        elif speaker:
            own = VoiceOwners(cache_dir).claim(speaker, owner or local_owner(), share)
            self.cache_file = cache_dir / f"speaker-{files.safe_name(speaker)}-{model_key[:12]}.pt"
            seconds = self._load()
            if not own:  # another owner's, shared: spoken as saved, never learned further from this speech nor saved
                self.cache_file = None
                if seconds is not None:
                    self.next_at = None
            elif seconds is not None:  # go on refining once as much new speech was heard
                self.next_at = seconds if seconds < self.learn_s else None

    def for_utterance(self, speech: Optional[np.ndarray]) -> tuple[Any, Any]:
        """The conditioning for the next utterance, refined from ``speech`` (16 kHz) while learning."""
        if speech is not None and self.next_at is not None and len(speech) / SAMPLE_RATE >= MIN_VOICE_S:
            self.heard.append(speech)
            self.heard_s += len(speech) / SAMPLE_RATE
            if self.heard_s >= self.next_at:
                import soxr

                audio = soxr.resample(np.concatenate(self.heard)[: int(self.learn_s * SAMPLE_RATE)], SAMPLE_RATE, COND_RATE)
                self.cond = self._condition([audio])
                log.info("voice learned from %.1f s of speech", min(self.heard_s, self.learn_s))
                self._save(seconds=min(self.heard_s, self.learn_s))
                self.next_at = min(2 * self.heard_s, self.learn_s) if self.heard_s < self.learn_s else None
                if self.next_at is None:
                    self.heard = []
        if self.cond is None:
            raise InputError("no voice to speak with yet: give --voice FILE, or speak for longer than a third of a second")
        return self.cond

    def _condition(self, clips: list[np.ndarray]) -> tuple[Any, Any]:
        """XTTS's own recipe (get_conditioning_latents), on arrays, with the checkpoint's settings:
        each clip cut to max_ref_len seconds (a long recording would otherwise go whole through the
        speaker encoder and can exhaust GPU memory), the speaker embedding averaged over the clips,
        the GPT latents from the clips together, gpt_cond_len seconds in gpt_cond_chunk_len chunks."""
        import torch

        c = self.xtts_config
        cut = int(c.max_ref_len * COND_RATE)
        tensors = [torch.from_numpy(np.ascontiguousarray(clip[:cut], dtype=np.float32))[None].to(self.model.device)
                   for clip in clips]
        if c.sound_norm_refs:
            tensors = [t / t.abs().max().clamp(min=1e-8) * 0.75 for t in tensors]
        embedding = torch.stack([self.model.get_speaker_embedding(t, COND_RATE) for t in tensors]).mean(dim=0)
        latents = self.model.get_gpt_cond_latents(torch.cat(tensors, dim=-1), COND_RATE, length=c.gpt_cond_len,
                                                  chunk_length=c.gpt_cond_chunk_len)
        return latents, embedding

    def _load(self) -> Optional[float]:
        """Load the cached voice; the seconds of speech behind it, or None when there is none."""
        import torch

        if self.cache_file is None or not self.cache_file.is_file():
            return None
        data = torch.load(self.cache_file, map_location=self.model.device)
        self.cond = (data["latents"], data["embedding"])
        log.info("voice loaded from %s", self.cache_file)
        return float(data["seconds"])

    def _save(self, seconds: float) -> None:
        import torch

        if self.cache_file is None:
            return
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        with files.atomic_write(self.cache_file) as tmp:
            torch.save({"latents": self.cond[0].cpu(), "embedding": self.cond[1].cpu(), "seconds": seconds}, tmp)


def local_owner() -> str:
    """The owner of the voices this machine's user saves in their own runs (``s3tvr run --speaker``)."""
    try:
        return f"user:{getpass.getuser()}"
    except Exception:  # no name for the uid (a container): the uid itself
        return f"uid:{os.getuid()}"


class VoiceOwners:
    """Who owns each voice saved under a speaker name in a voice cache folder: the first owner to
    ask for the name, recorded in ``speaker-NAME.owner.json`` beside the voices (for every model's
    voice of that name). An owner is an opaque string: ``user:NAME`` for this machine's user's own
    runs, a hash of the token for a server's clients (never the token), ``anonymous`` for those of
    a server without one. A voice saved before owners were recorded is the local user's. Another
    owner may not speak in the voice (:class:`VoiceNotYours`), or with ``share`` only as saved:
    a voice still learning is never extended, nor saved again, from another owner's speech."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def record(self, name: str) -> Path:
        return self.folder / f"speaker-{files.safe_name(name)}.owner.json"

    def owner(self, name: str) -> Optional[str]:
        """The owner of the voice ``name``; None when nobody has asked for it yet."""
        path = self.record(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return local_owner() if self._saved_before_owners(name) else None
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read who owns the voice {name!r} ({path}: {brief(exc)}): restore it, or delete it "
                             f"and the voice's files") from None
        owner = data.get("owner") if isinstance(data, dict) else None
        if not isinstance(owner, str) or not owner:
            raise InputError(f"{path} names no owner of the voice {name!r}: restore it, or delete it and the voice's files")
        return owner

    def check(self, name: str, owner: str, share: bool = False) -> bool:
        """Whether ``owner`` may learn and save the voice ``name`` (True: theirs, or nobody's yet),
        or only speak in it as saved (False: another's, ``share``); VoiceNotYours when neither."""
        current = self.owner(name)
        if current is None or current == owner:
            return True
        if share:
            return False
        raise VoiceNotYours(f"the voice {name!r} is another owner's (another token's or user's): choose another speaker name, "
                            f"or serve with --share-voices")

    def claim(self, name: str, owner: str, share: bool = False) -> bool:
        """As :meth:`check`, recording ``owner`` as the name's when it is nobody's yet; of two
        owners asking at once (other processes too), exactly one gets it."""
        if self.owner(name) is None:
            self._record(name, owner)
        return self.check(name, owner, share)

    def _record(self, name: str, owner: str) -> None:
        """Write the record unless one exists: whole (written aside, then linked into place,
        which fails when the name is taken), so that nobody reads half of one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".owner-", suffix=".partial", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"owner": owner, "name": name}, f)
            try:
                os.link(tmp, self.record(name))
            except FileExistsError:
                pass  # another owner (or this one, elsewhere) asked first
            except OSError:  # a file system without hard links: created only if absent, then written
                try:
                    with open(self.record(name), "x", encoding="utf-8") as f:
                        json.dump({"owner": owner, "name": name}, f)
                except FileExistsError:
                    pass
        finally:
            os.unlink(tmp)

    def _saved_before_owners(self, name: str) -> bool:
        voice = re.compile(rf"speaker-{re.escape(files.safe_name(name))}-[0-9a-f]{{12}}\.pt")
        return self.folder.is_dir() and any(voice.fullmatch(p.name) for p in self.folder.iterdir())


@contextmanager
def checkpoints_read_only() -> Iterator[None]:
    """While inside, coqui-tts's XTTS reads model.pth without ever writing it. The real v2.0.3 file
    holds a pickled XttsConfig; coqui-tts converts that to a dict and saves the 1.8 GB file back
    in place on first load: not atomic, impossible in a read-only folder (where it fails with a
    misleading message), and a changed file to anything that checks it (the voice cache's key).
    Used around loading for speech and for fine-tuning (GPTTrainer loads through the same method)."""
    import torch
    from TTS.tts.models import xtts as coqui_xtts

    def read(self: Any, model_path: Path) -> dict:
        # One read with XTTS's own classes allowed. coqui-tts tries without them first, but the config
        # is unpickled after every tensor, so the refusal comes once the 1.8 GB has been read.
        with coqui_xtts._legacy_safe_globals():
            return torch.load(model_path, map_location=torch.device("cpu"), weights_only=True)["model"]

    original = coqui_xtts.Xtts._load_checkpoint
    coqui_xtts.Xtts._load_checkpoint = read
    try:
        yield
    finally:
        coqui_xtts.Xtts._load_checkpoint = original


def _pass_the_cache_by_its_old_name(gpt: Any) -> None:
    """Let coqui-tts 0.28's GPT see the generation cache under transformers 5.24 and newer.

    transformers 5.24 renamed the cache that ``generate()`` hands the model's ``forward`` from
    ``past_key_values`` to ``cache``. coqui-tts's GPT2InferenceModel.forward takes ``**kwargs`` and
    reads ``past_key_values``, so it got None and failed on the first token with "'NoneType' object
    has no attribute 'get_seq_length'". Under its old name the cache reaches the model as before
    (transformers still accepts ``past_key_values`` inside the model, and older transformers never
    pass ``cache``: nothing changes for them). ``wraps`` keeps the signature generate() inspects."""
    forward = gpt.forward

    @functools.wraps(forward)
    def forward_with_cache(*args: Any, cache: Any = None, **kwargs: Any) -> Any:
        if cache is not None and kwargs.get("past_key_values") is None:
            kwargs["past_key_values"] = cache
        return forward(*args, **kwargs)

    gpt.forward = forward_with_cache


def _decode_in_float32(decoder: Any) -> None:
    """Run the HiFi-GAN decoder in float32 even under autocast: it is 6 % of XTTS's parameters and
    sums long upsampling stacks, where half precision is a risk no GPU here could rule out."""
    import torch

    forward = decoder.forward

    def forward_float32(latents: Any, g: Any = None) -> Any:
        with torch.autocast("cuda", enabled=False):
            return forward(latents.float(), g=None if g is None else g.float())

    decoder.forward = forward_float32


_NUMBER = re.compile(r"\d+(?:,\d+)*(?:\.\d+)?")  # \d: ASCII and Devanagari digits alike


def spell_hindi_numbers(text: str) -> str:
    """Numbers in Hindi words ("12" and "१२" -> "बारह"; "3.5" -> "तीन दशमलव पाँच"), which XTTS's
    cleaner would pass to num2words, which has no Hindi and fails the utterance."""
    from num_to_words import num_to_word

    def spell(m: re.Match) -> str:
        whole, _, fraction = m.group(0).replace(",", "").partition(".")
        words = num_to_word(whole, lang="hi", separator=" ", combiner=" ")
        if fraction:
            words += " दशमलव " + " ".join(num_to_word(d, lang="hi") for d in fraction)
        return words

    return _NUMBER.sub(spell, text)
