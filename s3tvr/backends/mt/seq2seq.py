"""MT with a transformers sequence-to-sequence model (NLLB-200, Marian): the shared part.

A text is split into sentences and its sentences are translated in one batch
(:meth:`~s3tvr.backends.kinds.MtBackend.translate_text`). Nothing is
truncated: the input is never cut, and the output may grow to ``max_length_ratio`` times the
input's tokens (plus a margin) before generation stops.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from s3tvr.backends.device import torch_dtype
from s3tvr.backends.kinds import MtBackend
from s3tvr.bounds import Range
from s3tvr.errors import SetupError, brief
from s3tvr.weights import downloaded

log = logging.getLogger(__name__)


@dataclass
class Seq2SeqConfig:
    model: str = ""
    num_beams: Annotated[int, Range(1, 20)] = 1  # greedy: the lowest latency; 4 is the usual quality setting for offline use
    # Output tokens allowed per input token (scripts differ in token counts).
    max_length_ratio: Annotated[float, Range(0, 10, above=True)] = 2.0
    batch_size: Annotated[int, Range(1, 1024)] = 16  # sentences per generate() call
    local_files_only: bool = False  # True: never download a named model


class Seq2SeqBackend(MtBackend):

    def __init__(self, config: Seq2SeqConfig, src_lang: str, tgt_lang: str, device: str = "cpu", dtype: str = "auto"):
        super().__init__(src_lang, tgt_lang)
        self.config = config
        self.device = device
        self.dtype_name = dtype
        self.model_name = downloaded.resolve(config.model or self.default_model())
        if downloaded.looks_like_path(self.model_name) and not (Path(self.model_name).expanduser() / "config.json").is_file():
            raise SetupError(f"MT model folder {self.model_name} has no config.json: give a transformers model folder "
                             f"or a hub name (mt.model=…), or run s3tvr download mt")
        self.tokenizer: Any = None
        self.model: Any = None

    def default_model(self) -> str:
        raise NotImplementedError

    def tokenizer_kwargs(self) -> dict[str, Any]:
        return {}

    def generate_kwargs(self) -> dict[str, Any]:
        return {}

    def prepare(self, sentences: list[str]) -> list[str]:
        return sentences

    def setup(self) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        dtype = torch_dtype(self.dtype_name, self.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_name, local_files_only=self.config.local_files_only,
                                                           **self.tokenizer_kwargs())
            self.model = AutoModelForSeq2SeqLM.from_pretrained(self.model_name, dtype=dtype,
                                                               local_files_only=self.config.local_files_only)
        except (OSError, ValueError) as exc:
            raise SetupError(f"could not load MT model {self.model_name!r} ({brief(exc)}): give a local folder "
                             "with mt.model=PATH, or run s3tvr download mt") from None
        self.model.to(self.device).eval()
        self.check_languages()

    def check_languages(self) -> None:
        """Raise SetupError when the loaded model cannot translate src_lang -> tgt_lang."""

    def translate(self, sentences: list[str], *, utt_id: int = 0) -> list[str]:
        import torch

        out: list[str] = []
        for i in range(0, len(sentences), self.config.batch_size):
            batch = self.prepare(sentences[i:i + self.config.batch_size])
            enc = self.tokenizer(batch, return_tensors="pt", padding=True).to(self.device)
            longest = int(enc["input_ids"].shape[1])
            with torch.inference_mode():
                ids = self.model.generate(**enc, num_beams=self.config.num_beams,
                                          max_new_tokens=int(longest * self.config.max_length_ratio) + 10,
                                          **self.generate_kwargs())
            out += [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return out

    def cleanup(self) -> None:
        self.model = self.tokenizer = None
