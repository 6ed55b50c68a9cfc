"""Person names from context cues and a shipped first-name list (no model, offline).

A *run* is a sequence of capitalized words ("Maria Garcia", "Dr. Emily Chen"). A run is
a name when:

* a strong cue precedes it ("my name is", "Dear", "Signed,", "Regards,", a title such as
  "Dr." or "Mrs"): every word of the run, or
* it starts with a first name from ``data/first_names.txt`` and a surname follows, or a
  weak cue precedes it ("Hi", "Thanks,", "this is", "ask"): the first name alone counts.

First names that are also common words (Will, Grace, Jordan - starred in the data file)
need a surname and must not open a sentence. Capitalized words that are never part of a
name (Street, Team, Monday...) end a run. Lower-case names ("john smith") are missed.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Final

from dspy_flywheel.privacy.spans import PERSON, PRIORITY, Span

_UPPER = "A-ZÀ-ÖØ-Þ"
_LOWER = "a-zß-öø-ÿ"
_TOKEN: Final = (
    rf"[{_UPPER}](?:[{_LOWER}]+|['’][{_UPPER}][{_LOWER}]+)(?:[{_UPPER}][{_LOWER}]+)?"
    rf"(?:-[{_UPPER}]?[{_LOWER}]+)*"
)
_PARTICLE: Final = r"(?:van|von|de|del|della|da|di|du|le|la|bin|ibn|al|dos|das|ter|ten)"
_RUN: Final = re.compile(
    rf"(?<![\w@.'’\-])(?:{_TOKEN})(?:[ \t]+(?:{_PARTICLE}[ \t]+)?(?:[A-Z]\.[ \t]+)?(?:{_TOKEN})){{0,3}}"
    r"(?![\w@])"
)
_WORD: Final = re.compile(rf"{_TOKEN}|{_PARTICLE}|[A-Z]\.")

_TITLE: Final = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Professor|Sir|Dame|Madam|Mme|Mlle|Herr|Frau|Sr|Sra|Srta)"
_STRONG_CUE: Final = re.compile(
    rf"(?:\b{_TITLE}\.?[ \t]+"
    r"|(?i:\b(?:my name is|my name's|name is|(?:full |first |last )?name\s*[:=]|signed|"
    r"sincerely|regards|dear|attn\.?|attention|patient|customer|client|employee|applicant|"
    r"(?:reported|assigned|written|authored|submitted|approved|requested|signed) by|"
    r"contact person|sender|recipient)\s*[,:\-]?\s*))$"
)
_WEAK_CUE: Final = re.compile(
    r"(?i:\b(?:i am|i'm|this is|it's|hi|hello|hey|thanks|thank you|cheers|best|ask|asked|"
    r"contact|call|email|meet|met|told|tell|from|to|cc|with|and|by|for)\s*[,:\-]?\s*)$"
)
_STRONG_WORDS: Final = frozenset({"Dear", "Signed", "Sincerely", "Regards", "Attn"})
_WEAK_WORDS: Final = frozenset({"Hi", "Hello", "Hey", "Thanks", "Cheers", "Best", "Ask", "Meet"})
_TITLES: Final = frozenset(re.findall(r"[A-Za-z]+", _TITLE))
NONE, WEAK, STRONG = 0, 1, 2


@lru_cache(maxsize=1)
def _load_names() -> tuple[frozenset[str], frozenset[str]]:
    """(plain first names, first names that are also ordinary words)."""
    text = resources.files("dspy_flywheel.privacy").joinpath("data/first_names.txt").read_text(
        encoding="utf-8"
    )
    plain, ambiguous = set(), set()
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        (ambiguous if entry.endswith("*") else plain).add(entry.rstrip("*"))
    return frozenset(plain), frozenset(ambiguous)


@lru_cache(maxsize=1)
def _load_stop_words() -> frozenset[str]:
    text = resources.files("dspy_flywheel.privacy").joinpath("data/not_names.txt").read_text(
        encoding="utf-8"
    )
    return frozenset(w for line in text.splitlines() for w in line.split() if not w.startswith("#"))


class PersonNameRecognizer:
    name = "person_name"

    def __init__(self) -> None:
        self._first_names, self._ambiguous = _load_names()
        self._stop = _load_stop_words() | _TITLES

    def find(self, text: str) -> list[Span]:
        spans = []
        for run in _RUN.finditer(text):
            words = [(m.start() + run.start(), m.end() + run.start(), m.group())
                     for m in _WORD.finditer(run.group())]  # fmt: skip
            cue = self._cue_before(text, run.start())
            while words and (words[0][2] in self._stop or words[0][2][0].islower()):
                word = words.pop(0)[2]
                cue = STRONG if word in _STRONG_WORDS else WEAK if word in _WEAK_WORDS else NONE
            name = self._name_words(words, cue, self._sentence_start(text, run.start()))
            if name:
                start, end = name[0][0], name[-1][1]
                canonical = " ".join(w[2] for w in name).casefold()
                spans.append(Span(start, end, PERSON, PRIORITY[PERSON], canonical))
        return spans

    def _name_words(
        self, words: list[tuple[int, int, str]], cue: int, sentence_start: bool
    ) -> list[tuple[int, int, str]]:
        for index, word in enumerate(words):
            if word[2] in self._stop:
                words = words[:index]
                break
        while words and (words[-1][2][0].islower() or words[-1][2].endswith(".")):
            words.pop()  # a particle or an initial never ends a name
        if not words:
            return []
        if cue == STRONG:
            return words
        for index, (_, _, token) in enumerate(words):
            word = token.split("-", 1)[0]  # "Jean-Luc" is looked up as "Jean"
            has_surname = index + 1 < len(words)
            if word in self._first_names and (has_surname or (cue == WEAK and index == 0)):
                return words[index:]
            if (
                word in self._ambiguous
                and has_surname
                and (cue != NONE or index > 0 or not sentence_start)
            ):
                return words[index:]
        return []

    @staticmethod
    def _cue_before(text: str, start: int) -> int:
        before = text[max(0, start - 40) : start]
        if _STRONG_CUE.search(before):
            return STRONG
        return WEAK if _WEAK_CUE.search(before) else NONE

    @staticmethod
    def _sentence_start(text: str, start: int) -> bool:
        before = text[:start].rstrip(" \t\"'“(")
        return not before or before[-1] in ".!?\n:;"
