"""MT with Helsinki-NLP's opus-mt Marian models: small and fast, one model per language pair.

The default model is Helsinki-NLP/opus-mt-SRC-TGT. Multi-target models (opus-mt-en-ROMANCE,
opus-mt-en-mul …) pick the language with a token at the start of the input, found once at setup.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from s3tvr.backends.mt.seq2seq import Seq2SeqBackend, Seq2SeqConfig
from s3tvr.errors import SetupError

log = logging.getLogger(__name__)

# The target tokens a language may have, in the order tried: ISO 639-1 in the first OPUS-MT
# multi-target models (>>es<<), ISO 639-3, with a script where the language has several, in the
# Tatoeba Challenge ones (>>spa<<, >>cmn_Hans<<, >>arb<<; macrolanguage codes such as >>zho<< last).
TARGET_TAGS = {
    "en": ["en", "eng"], "de": ["de", "deu"], "fr": ["fr", "fra"], "es": ["es", "spa"], "it": ["it", "ita"],
    "pt": ["pt", "por"], "pl": ["pl", "pol"], "cs": ["cs", "ces"], "ru": ["ru", "rus"], "nl": ["nl", "nld"],
    "tr": ["tr", "tur"], "hu": ["hu", "hun"], "ja": ["ja", "jpn", "jpn_Jpan"], "ko": ["ko", "kor", "kor_Hang"],
    "hi": ["hi", "hin"], "ar": ["ar", "arb", "ara"],
    "zh": ["zh", "cmn_Hans", "zho_Hans", "cmn", "zho", "cmn_Hant", "zho_Hant"],
}


@dataclass
class Config(Seq2SeqConfig):
    model: str = ""  # default Helsinki-NLP/opus-mt-SRC-TGT; any Marian model name or folder


class Backend(Seq2SeqBackend):
    backend = "marian"
    tag: Optional[str] = None  # the target token of a multi-target model

    def default_model(self) -> str:
        return f"Helsinki-NLP/opus-mt-{self.src_lang}-{self.tgt_lang}"

    def check_languages(self) -> None:
        """A multi-target model must have a token for the target: without one it would translate
        into whichever language it likes best, silently."""
        vocab = self.tokenizer.get_vocab()
        tags = sorted(t for t in vocab if t.startswith(">>") and t.endswith("<<"))
        if not tags:
            return
        for code in TARGET_TAGS.get(self.tgt_lang, [self.tgt_lang]):
            if f">>{code}<<" in vocab:
                self.tag = f">>{code}<<"
                log.info("%s: target token %s", self.model_name, self.tag)
                return
        raise SetupError(f"MT model {self.model_name} has no target token for {self.tgt_lang} (it has {', '.join(tags[:8])}"
                         f"{' …' if len(tags) > 8 else ''}): choose a model that translates into {self.tgt_lang}")

    def prepare(self, sentences: list[str]) -> list[str]:
        return [f"{self.tag} {s}" for s in sentences] if self.tag else sentences
