"""Simultaneous translation: commit what the ASR has stably heard while the speaker is still talking.

While an utterance is being spoken the ASR re-reads the audio heard so far every ~0.5-1 s. Each
pass is a *hypothesis*; its tail changes from pass to pass as more audio arrives. LocalAgreement-2
(Macháček et al., 2023, "Turning Whisper into Real-Time Transcription System", ufal/whisper_streaming)
commits the longest prefix on which two consecutive hypotheses agree: a word two passes agree on,
with the audio after it heard in between, rarely changes again. Committed words are never taken
back; a final pass at the end of the utterance commits the rest.

:class:`ClauseSplitter` then releases the committed words downstream clause by clause, so
translation and speech start before the sentence ends.
"""

from __future__ import annotations

import unicodedata

from s3tvr.backends.kinds import Word

SENTENCE_MARKS = frozenset(".?!…。？！｡।॥؟։።")
CLAUSE_MARKS = frozenset(",;:，、；：،؛")
# Closing quotes and brackets may follow a mark ("dijo.»"): the mark still ends the word.
_CLOSERS = "\"'”’»›)]}」』）"

# Whisper's word times jitter by a few tens of ms between passes over a growing buffer: a word whose
# middle lies before the last committed word's end by more than this is an old word heard again.
STALE_MARGIN_S = 0.1
# Whisper re-emits the last few committed words at the head of a hypothesis (their times shifted
# too much for the margin above); up to this many are recognised as a repeat and dropped ...
MAX_OVERLAP_WORDS = 5
# ... but only when the hypothesis resumes within this long of the committed end: a repeat much
# later is speech ("no, no") and is kept.
OVERLAP_WINDOW_S = 1.0
PROMPT_CHARS = 200  # Whisper's prompt is at most 224 tokens; whisper_streaming feeds back 200 characters
# The last pass hears at least this much before the end (tail_start): less, and Whisper guesses at
# the first words (tests/test_agreement.py); the encoder reads it plus the window margin.
TAIL_CONTEXT_S = 3.0


def normalise_word(text: str) -> str:
    """A word as the agreement compares it: lowercase, no punctuation ("¿Qué," == "qué")."""
    return "".join(c for c in text.lower() if not unicodedata.category(c).startswith("P")).strip()


def clause_text(words: list[Word]) -> str:
    """Words joined into text. Whisper's word texts carry their leading space and NeMo's do not:
    each is stripped and they are joined with single spaces."""
    return " ".join(t for t in (w.text.strip() for w in words) if t)


def _final_mark(text: str) -> str:
    """The punctuation mark that ends ``text`` (closing quotes skipped), or "" when none."""
    return text.strip().rstrip(_CLOSERS)[-1:]


def ends_sentence(text: str) -> bool:
    return _final_mark(text) in SENTENCE_MARKS  # "" is not in the set


class LocalAgreement:
    """The per-utterance state of LocalAgreement-2.

    Each pass: ``update(words, buffer_start_s)`` with the hypothesis of the audio from
    ``buffer_start_s`` (the current :attr:`buffer_start_s`) to now, then ``trim(heard_s)`` with the
    seconds of the utterance heard so far. At the end of the utterance, ``finish(words, buffer_start_s)``
    with one last pass. Times are seconds on the utterance's timeline.
    """

    def __init__(self, trim_s: float = 10.0):
        self.trim_s = trim_s
        self.committed: list[Word] = []
        self.buffer_start_s = 0.0  # where the next pass's audio starts; moves forward only by trim()
        self._previous: list[Word] = []  # the uncommitted rest of the previous hypothesis

    @property
    def text(self) -> str:
        return clause_text(self.committed)

    @property
    def prompt(self) -> str:
        """The prompt of a pass over the buffer (:meth:`prompt_before` its start)."""
        return self.prompt_before(self.buffer_start_s)

    def prompt_before(self, start_s: float) -> str:
        """The last ≤ PROMPT_CHARS of committed text before ``start_s``, cut at a word boundary, fed
        back to the ASR as its prompt for a pass over the audio from ``start_s``. Only words that end
        before it count (as in whisper_streaming): words still in the audio are heard again, and a
        prompt holding them invites Whisper to skip them as said."""
        picked: list[str] = []
        length = -1  # the first word needs no separating space
        for word in reversed(self.committed):
            if word.end > start_s:
                continue
            text = word.text.strip()
            if length + 1 + len(text) > PROMPT_CHARS:
                break
            picked.append(text)
            length += 1 + len(text)
        return " ".join(reversed(picked))

    def tail_start(self, heard_s: float, context_s: float = TAIL_CONTEXT_S) -> float:
        """Where the last pass's audio starts: the end of the latest committed word at least
        ``context_s`` before ``heard_s`` (the committed words after it are heard again, and dropped as
        repeats), else the buffer's start. The last pass decodes little more than the uncommitted
        tail, with the committed text before it as its prompt, and its encoder reads a window that
        much shorter."""
        ends = [w.end for w in self.committed if self.buffer_start_s < w.end <= heard_s - context_s]
        return max(ends, default=self.buffer_start_s)

    def update(self, words: list[Word], buffer_start_s: float, heard_s: float = 0.0) -> list[Word]:
        """A new hypothesis of the audio buffer starting at ``buffer_start_s`` (``heard_s``: the
        seconds of the utterance heard, for policies that judge by it); returns the words it
        commits: the longest prefix it shares with the previous hypothesis."""
        hypothesis = self._after_committed(words, buffer_start_s)
        agreed = 0
        for new, old in zip(hypothesis, self._previous):
            if normalise_word(new.text) != normalise_word(old.text):
                break
            agreed += 1
        self._previous = hypothesis[agreed:]
        # The newer pass's copy is committed: it heard more audio, so its times and punctuation are the better ones.
        return self._commit(hypothesis[:agreed])

    def finish(self, words: list[Word], buffer_start_s: float) -> list[Word]:
        """The final pass at the end of the utterance: commits all of it after what is committed."""
        self._previous = []
        return self._commit(self._after_committed(words, buffer_start_s))

    def trim(self, heard_s: float) -> float:
        """Where the next pass's audio should start, given the seconds of the utterance heard so far
        (the end of this pass's buffer). Once the buffer (``heard_s - buffer_start_s``) is longer than
        ``trim_s`` it is cut at the end of the last committed sentence in it, or lacking one at the
        last committed word: Whisper's time per pass grows with the buffer, and what is committed need
        not be heard again. The caller cuts its audio there. It takes the heard length, not the
        buffer's, so a caller holding the whole utterance's audio passes its length unchanged."""
        if heard_s - self.buffer_start_s <= self.trim_s:
            return self.buffer_start_s
        inside = [w for w in self.committed if w.end > self.buffer_start_s]
        if inside:
            sentence_ends = [w.end for w in inside if ends_sentence(w.text)]
            self.buffer_start_s = sentence_ends[-1] if sentence_ends else inside[-1].end
        return self.buffer_start_s

    def _after_committed(self, words: list[Word], buffer_start_s: float) -> list[Word]:
        """The hypothesis on the utterance's timeline, without what is already committed."""
        hypothesis = [Word(w.text, w.start + buffer_start_s, w.end + buffer_start_s, w.probability)
                      for w in words if normalise_word(w.text)]
        if not self.committed:
            return hypothesis
        last_end = self.committed[-1].end
        # A word lying mostly before the committed end was heard already, even when heard differently
        # this time. (Judged by its end, a re-heard committed word would be kept; by its start, a new
        # word overlapping a committed word whose end Whisper stretched would be lost.)
        hypothesis = [w for w in hypothesis if (w.start + w.end) / 2 > last_end - STALE_MARGIN_S]
        if hypothesis and abs(hypothesis[0].start - last_end) < OVERLAP_WINDOW_S:
            # Longest repeat first: with a committed tail "sí sí" and a head "sí sí pero", dropping
            # only one "sí" would commit it twice.
            longest = min(MAX_OVERLAP_WORDS, len(self.committed), len(hypothesis))
            for n in range(longest, 0, -1):
                tail = [normalise_word(w.text) for w in self.committed[-n:]]
                if tail == [normalise_word(w.text) for w in hypothesis[:n]]:
                    return hypothesis[n:]
        return hypothesis

    def _commit(self, words: list[Word]) -> list[Word]:
        # One timeline for what downstream sees: a word cannot start before the previous committed one
        # ended, whatever a later pass's jittered times say.
        committed = []
        floor = self.committed[-1].end if self.committed else 0.0
        for w in words:
            start = max(w.start, floor)
            floor = max(w.end, start)
            committed.append(Word(w.text, start, floor, w.probability))
        self.committed += committed
        return committed


class AlignedCommit(LocalAgreement):
    """AlignAtt's rule (Papi et al., 2023; SimulStreaming) on Whisper's word times instead of two
    passes' agreement: a word is committed once the decoder's alignment of it (faster-whisper's
    word times come from its cross-attention alignment heads) ends at least ``threshold_s`` before
    the end of the audio heard, in one pass, so words commit a pass sooner. The words before it
    must qualify too: committed text stays a prefix, and is never taken back."""

    def __init__(self, trim_s: float = 10.0, threshold_s: float = 1.0):
        super().__init__(trim_s)
        self.threshold_s = threshold_s

    def update(self, words: list[Word], buffer_start_s: float, heard_s: float = 0.0) -> list[Word]:
        hypothesis = self._after_committed(words, buffer_start_s)
        settled = 0
        for word in hypothesis:
            if word.end > heard_s - self.threshold_s:
                break
            settled += 1
        self._previous = hypothesis[settled:]
        return self._commit(hypothesis[:settled])


POLICIES = ("agreement", "aligned")


def commit_policy(name: str, trim_s: float, threshold_s: float) -> LocalAgreement:
    """A fresh per-utterance commit state: ``agreement`` (LocalAgreement-2) or ``aligned`` (AlignedCommit)."""
    return AlignedCommit(trim_s, threshold_s) if name == "aligned" else LocalAgreement(trim_s)


class ClauseSplitter:
    """Releases committed words in clauses, so translation and speech can start before the
    sentence ends. A clause ends at a sentence mark; once it has ``min_words`` words, at a clause
    mark or before a pause of ``pause_s``; and at ``max_words`` words when none of those comes."""

    def __init__(self, max_words: int = 12, min_words: int = 3, pause_s: float = 0.35):
        if not 1 <= min_words <= max_words:
            raise ValueError(f"need 1 <= min_words <= max_words, not {min_words} and {max_words}")
        self.max_words = max_words
        self.min_words = min_words
        self.pause_s = pause_s
        self._pending: list[Word] = []  # words not yet in a complete clause

    def push(self, words: list[Word]) -> list[list[Word]]:
        """Adds committed words; returns the clauses now complete, in order."""
        self._pending += words
        clauses = []
        while length := self._complete_length():
            clauses.append(self._pending[:length])
            self._pending = self._pending[length:]
        return clauses

    def flush(self) -> list[Word]:
        """The words left at the end of the utterance (possibly none)."""
        rest, self._pending = self._pending, []
        return rest

    def _complete_length(self) -> int:
        """How many pending words make a complete clause; 0 while none is complete yet."""
        for i, word in enumerate(self._pending):
            count = i + 1
            mark = _final_mark(word.text)
            if mark in SENTENCE_MARKS:
                return count
            if count >= self.min_words:
                if mark in CLAUSE_MARKS:
                    return count
                # A pause is only known once the next word has come: the last word waits for it.
                following = self._pending[i + 1] if count < len(self._pending) else None
                if following is not None and following.start - word.end >= self.pause_s:
                    return count
            if count >= self.max_words:
                return count
        return 0
