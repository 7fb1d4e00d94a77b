"""Sentence splitting for MT and XTTS: every piece under the limit, nothing dropped."""

from s3tvr.languages import XTTS_CHAR_LIMITS, join_sentences
from s3tvr.text import split_sentences, split_to_limit


def test_sentences_keep_their_punctuation():
    assert split_sentences("Hola. ¿Qué tal? ¡Bien!") == ["Hola.", "¿Qué tal?", "¡Bien!"]
    assert split_sentences("你好。今天很好！") == ["你好。", "今天很好！"]
    assert split_sentences("  ") == []
    assert split_sentences("no punctuation at all") == ["no punctuation at all"]


def test_long_sentences_are_cut_at_clauses_then_words():
    clause = "el uso adecuado de los blogs puede empoderar a los alumnos"
    text = ", ".join([clause] * 6) + "."
    pieces = split_to_limit(text, XTTS_CHAR_LIMITS["es"])
    assert len(pieces) == 2 and all(len(p) <= 239 for p in pieces)
    assert pieces[0].endswith(",")  # cut after a comma, not mid-clause
    assert " ".join(pieces).split() == text.split()
    words = " ".join(["palabra"] * 100)
    assert all(len(p) <= 50 for p in split_to_limit(words, 50))
    assert " ".join(split_to_limit(words, 50)).split() == words.split()


def test_text_without_spaces_is_cut_anywhere_and_rejoined_without_spaces():
    text = "今" * 200 + "。"
    pieces = split_to_limit(text, XTTS_CHAR_LIMITS["ja"])
    assert all(len(p) <= 71 for p in pieces) and "".join(pieces) == text
    assert join_sentences(["你好。", "再见。"], "zh") == "你好。再见。"
    assert join_sentences(["Hi.", "Bye."], "en") == "Hi. Bye."
