"""The languages s3tvr speaks and what each model family calls them.

XTTS v2 speaks 17 languages; NLLB-200 covers all of them, so every pair of these works with the
model stack. XTTS limits the characters per call and truncates beyond (its tokenizer's limits).
"""

from __future__ import annotations

LANGUAGES = ["en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "zh", "ja", "hu", "ko", "hi"]

NLLB_CODES = {
    "en": "eng_Latn", "es": "spa_Latn", "fr": "fra_Latn", "de": "deu_Latn", "it": "ita_Latn", "pt": "por_Latn",
    "pl": "pol_Latn", "tr": "tur_Latn", "ru": "rus_Cyrl", "nl": "nld_Latn", "cs": "ces_Latn", "ar": "arb_Arab",
    "zh": "zho_Hans", "ja": "jpn_Jpan", "hu": "hun_Latn", "ko": "kor_Hang", "hi": "hin_Deva",
}

XTTS_CODES = {lang: ("zh-cn" if lang == "zh" else lang) for lang in LANGUAGES}

XTTS_CHAR_LIMITS = {
    "en": 250, "de": 253, "fr": 273, "es": 239, "it": 213, "pt": 203, "pl": 224, "zh": 82, "ar": 166,
    "cs": 186, "ru": 182, "nl": 251, "tr": 226, "ja": 71, "hu": 224, "ko": 95, "hi": 150,
}

# Languages written without spaces between words: sentences join without a space.
UNSPACED = {"zh", "ja"}


def join_sentences(sentences: list[str], lang: str) -> str:
    return ("" if lang in UNSPACED else " ").join(sentences)

NAMES = {
    "en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese", "pl": "Polish",
    "tr": "Turkish", "ru": "Russian", "nl": "Dutch", "cs": "Czech", "ar": "Arabic", "zh": "Chinese", "ja": "Japanese",
    "hu": "Hungarian", "ko": "Korean", "hi": "Hindi",
}

# ISO 639-2 codes, with which containers tag a track's language: the terminology forms (MP4's spec),
# and the five bibliographic forms that differ (Matroska's spec asks for those).
ISO639_2 = {
    "en": "eng", "es": "spa", "fr": "fra", "de": "deu", "it": "ita", "pt": "por", "pl": "pol", "tr": "tur", "ru": "rus",
    "nl": "nld", "cs": "ces", "ar": "ara", "zh": "zho", "ja": "jpn", "hu": "hun", "ko": "kor", "hi": "hin",
}
ISO639_2_B = {**ISO639_2, "fr": "fre", "de": "ger", "nl": "dut", "cs": "cze", "zh": "chi"}
