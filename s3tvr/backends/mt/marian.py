"""MT with Helsinki-NLP's opus-mt Marian models: small and fast, one model per language pair.

The default model is Helsinki-NLP/opus-mt-SRC-TGT. Multi-target models (opus-mt-en-ROMANCE …)
pick the language with a ``>>tgt<<`` token, added when the model's vocabulary has one.
"""

from __future__ import annotations

from dataclasses import dataclass

from s3tvr.backends.mt.seq2seq import Seq2SeqBackend, Seq2SeqConfig


@dataclass
class Config(Seq2SeqConfig):
    model: str = ""  # default Helsinki-NLP/opus-mt-SRC-TGT; any Marian model name or folder


class Backend(Seq2SeqBackend):
    backend = "marian"

    def default_model(self) -> str:
        return f"Helsinki-NLP/opus-mt-{self.src_lang}-{self.tgt_lang}"

    def prepare(self, sentences: list[str]) -> list[str]:
        tag = f">>{self.tgt_lang}<<"
        if tag in self.tokenizer.get_vocab():
            return [f"{tag} {s}" for s in sentences]
        return sentences
