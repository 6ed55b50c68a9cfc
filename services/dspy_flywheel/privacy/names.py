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

_APOSTROPHES = "'\u2019"  # ASCII and typographic
_UPPER = "A-ZÀ-ÖØ-Þ"
_LOWER = "a-zß-öø-ÿ"
# A capitalized word after its first letter: "aria", "'Brien", "cDonald", "ean-Luc".
_TOKEN_TAIL: Final = (
    rf"(?:[{_LOWER}]+|[{_APOSTROPHES}][{_UPPER}][{_LOWER}]+)(?:[{_UPPER}][{_LOWER}]+)?"
    rf"(?:-[{_UPPER}]?[{_LOWER}]+)*"
)
_TOKEN: Final = rf"[{_UPPER}]{_TOKEN_TAIL}"
_PARTICLE: Final = r"(?:van|von|de|del|della|da|di|du|le|la|bin|ibn|al|dos|das|ter|ten)"
_RUN: Final = re.compile(
    # The first letter comes first so the scan skips quickly to capitals; the lookbehind then
    # checks the character before it (a 2-char window: previous char + this capital).
    rf"[{_UPPER}](?<![\w@.{_APOSTROPHES}\-].){_TOKEN_TAIL}"
    rf"(?:[ \t]+(?:{_PARTICLE}[ \t]+)?(?:[A-Z]\.[ \t]+)?(?:{_TOKEN})){{0,3}}(?![\w@])"
)
_WORD: Final = re.compile(rf"{_TOKEN}|{_PARTICLE}|[A-Z]\.")

_TITLES: Final = frozenset(
    [
        "Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof", "Professor", "Sir", "Dame", "Madam",
        "Mme", "Mlle", "Herr", "Frau", "Sr", "Sra", "Srta",
    ]
)  # fmt: skip
_ROLES: Final = frozenset(
    [
        "CEO", "CTO", "CFO", "COO", "President", "Senator", "Governor", "Mayor", "Judge",
        "Officer", "Captain", "Coach", "Agent", "Detective", "Inspector", "Sergeant",
        "Lieutenant", "Colonel", "General", "Chairman", "Chairwoman",
    ]
)  # fmt: skip
_RELATIONS: Final = [
    "wife", "husband", "son", "daughter", "mother", "father", "mom", "dad", "brother", "sister",
    "friend", "colleague", "coworker", "co-worker", "manager", "boss", "neighbor", "neighbour",
    "partner", "doctor", "lawyer", "landlord", "tenant", "teacher",
]  # fmt: skip
# Lower-cased phrases that end right before a name, by how much they vouch for it.
_STRONG_PHRASES: Final = frozenset(
    [
        "my name is", "my name's", "name is", "signed", "sincerely", "regards", "dear",
        "attn", "attention", "patient", "customer", "client", "employee", "applicant",
        "author", "assignee", "reporter", "owner", "contact person", "sender", "recipient",
        *(f"{verb} by" for verb in ("reported", "assigned", "written", "authored",
                                    "submitted", "approved", "requested", "signed")),
        *(f"{owner} {rel}" for owner in ("my", "our", "his", "her", "their") for rel in _RELATIONS),
    ]
)  # fmt: skip
_STRONG_WITH_COLON: Final = frozenset(["name", "full name", "first name", "last name"])
_WEAK_PHRASES: Final = frozenset(
    [
        "i am", "i'm", "this is", "it's", "hi", "hello", "hey", "thanks", "thank", "thank you",
        "cheers", "best", "ask", "asked", "contact", "call", "called", "email", "emailed",
        "ping", "pinged", "message", "messaged", "text", "texted", "meet", "met", "told", "tell",
        "inform", "informed", "notify", "notified", "cc'd", "spoke to", "spoke with",
        "talked to", "talked with", "from", "to", "cc", "with", "and", "by", "for",
    ]
)  # fmt: skip
_CUE_LAST_WORDS: Final = frozenset(
    phrase.rsplit(" ", 1)[-1] for phrase in (*_STRONG_PHRASES, *_STRONG_WITH_COLON, *_WEAK_PHRASES)
)
_STRONG_WORDS: Final = frozenset({"Dear", "Signed", "Sincerely", "Regards", "Attn"})
_WEAK_WORDS: Final = frozenset({"Hi", "Hello", "Hey", "Thanks", "Cheers", "Best", "Ask", "Meet"})
UNKNOWN, NONE, WEAK, STRONG = -1, 0, 1, 2
_Word = tuple[int, int, str]  # start, end, text


@lru_cache(maxsize=1)
def _load_names() -> tuple[frozenset[str], frozenset[str]]:
    """(plain first names, first names that are also ordinary words)."""
    text = (
        resources.files("dspy_flywheel.privacy")
        .joinpath("data/first_names.txt")
        .read_text(encoding="utf-8")
    )
    plain: set[str] = set()
    ambiguous: set[str] = set()
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        (ambiguous if entry.endswith("*") else plain).add(entry.rstrip("*"))
    return frozenset(plain), frozenset(ambiguous)


@lru_cache(maxsize=1)
def _load_stop_words() -> frozenset[str]:
    text = (
        resources.files("dspy_flywheel.privacy")
        .joinpath("data/not_names.txt")
        .read_text(encoding="utf-8")
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
            run_text = run.group()
            if run_text in self._stop:
                continue  # a lone "The", "Please", "Monday"
            if " " in run_text or "\t" in run_text:
                offset = run.start()
                words = [(m.start() + offset, m.end() + offset, m.group())
                         for m in _WORD.finditer(run_text)]  # fmt: skip
            else:
                words = [(run.start(), run.end(), run_text)]
            cue = UNKNOWN
            while words and (words[0][2] in self._stop or words[0][2][0].islower()):
                word = words.pop(0)[2]  # "Dear", "Hi", "Mr" inside the run act as cues
                if word in _STRONG_WORDS or word in _TITLES:
                    cue = STRONG
                else:
                    cue = WEAK if word in _WEAK_WORDS else NONE
            name = self._name_words(text, run.start(), run.end(), words, cue)
            if name:
                start, end = name[0][0], name[-1][1]
                canonical = " ".join(w[2] for w in name).casefold()
                spans.append(Span(start, end, PERSON, PRIORITY[PERSON], canonical))
        return spans

    def _name_words(
        self, text: str, run_start: int, run_end: int, words: list[_Word], cue: int
    ) -> list[_Word]:
        for index, word in enumerate(words):
            if word[2] in self._stop:
                words = words[:index]
                break
        while words and (words[-1][2][0].islower() or words[-1][2].endswith(".")):
            words.pop()  # a particle or an initial never ends a name
        if not words:
            return []
        if len(words) > 1 and self._known(words[0][2]):
            return words  # first name + surname: no cue needed
        if cue == UNKNOWN:
            cue = self._cue_before(text, run_start)
        if cue == STRONG:
            return words
        possessive = text.startswith(("'s", "\u2019s"), run_end)  # "Brian's note"
        for index, (_, _, token) in enumerate(words):
            has_surname = index + 1 < len(words)
            alone_ok = (cue == WEAK and index == 0) or (possessive and not has_surname)
            if self._known(token) and (has_surname or alone_ok):
                return words[index:]
            if (
                token in self._ambiguous
                and has_surname
                and (cue != NONE or index > 0 or not self._sentence_start(text, run_start))
            ):
                return words[index:]
        return []

    def _known(self, token: str) -> bool:
        """A first name; "Jean-Luc" is looked up as "Jean" and then is never ambiguous."""
        word, hyphen, _ = token.partition("-")
        return word in self._first_names or (hyphen != "" and word in self._ambiguous)

    @staticmethod
    def _cue_before(text: str, start: int) -> int:
        before = text[max(0, start - 40) : start]
        stripped = before.rstrip(" \t\r\n,:-=")
        if not stripped:
            return NONE
        last = stripped[max(stripped.rfind(" "), stripped.rfind("\n"), stripped.rfind("\t")) + 1 :]
        last = last.rstrip(".")
        if last in _TITLES or last in _ROLES:
            return STRONG
        if last.lower() not in _CUE_LAST_WORDS:
            return NONE  # the common case, decided without building phrases
        colon = ":" in before[len(stripped) :] or "=" in before[len(stripped) :]
        lowered = [w.lower().rstrip(".") for w in stripped.split()[-3:]]
        cue = NONE
        for size in range(1, len(lowered) + 1):
            phrase = " ".join(lowered[-size:])
            if phrase in _STRONG_PHRASES or (colon and phrase in _STRONG_WITH_COLON):
                return STRONG
            if phrase in _WEAK_PHRASES:
                cue = WEAK
        return cue

    @staticmethod
    def _sentence_start(text: str, start: int) -> bool:
        before = text[max(0, start - 16) : start].rstrip(" \t\"'“(")
        return (not before and start < 16) or (before != "" and before[-1] in ".!?\n:;")
