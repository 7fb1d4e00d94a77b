"""MT with Meta's NLLB-200 (facebook/nllb-200-distilled-1.3B by default; 600M, 3.3B selectable)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from s3tvr.backends.mt.seq2seq import Seq2SeqBackend, Seq2SeqConfig
from s3tvr.errors import InputError, SetupError
from s3tvr.languages import NLLB_CODES


@dataclass
class Config(Seq2SeqConfig):
    model: str = "facebook/nllb-200-distilled-1.3B"  # or -600M, nllb-200-3.3B, a local folder


class Backend(Seq2SeqBackend):
    backend = "nllb"

    def __init__(self, config: Config, src_lang: str, tgt_lang: str, device: str = "cpu", dtype: str = "auto"):
        for lang in (src_lang, tgt_lang):
            if lang not in NLLB_CODES:
                raise InputError(f"NLLB has no code for {lang!r} here: choose from {', '.join(NLLB_CODES)}")
        super().__init__(config, src_lang, tgt_lang, device, dtype)

    def default_model(self) -> str:
        return Config.model

    def tokenizer_kwargs(self) -> dict[str, Any]:
        return {"src_lang": NLLB_CODES[self.src_lang], "tgt_lang": NLLB_CODES[self.tgt_lang]}

    def check_languages(self) -> None:
        for code in (NLLB_CODES[self.src_lang], NLLB_CODES[self.tgt_lang]):
            if self.tokenizer.convert_tokens_to_ids(code) in (None, self.tokenizer.unk_token_id):
                raise SetupError(f"MT model {self.model_name} has no language token {code}: is it an NLLB model?")

    def generate_kwargs(self) -> dict[str, Any]:
        # NLLB starts the output with the target language's token: that is what picks the language.
        return {"forced_bos_token_id": self.tokenizer.convert_tokens_to_ids(NLLB_CODES[self.tgt_lang])}
