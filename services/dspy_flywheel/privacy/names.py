"""Person names from context cues and shipped name lists (no model, offline).

A *run* is a sequence of capitalized words in any Latin script ("Maria Garcia", "Tomasz
Wiśniewski", "Nguyen Van An"). How much a run needs depends on the cue before it
(:mod:`.name_cues`):

* a strong cue ("my name is", "Dear", a title, "Regards,\\n"): every word of the run;
* an introducing cue ("Hi", "Bonjour", "this is", "I'm", "ask for", "Thanks,"): the run unless
  a word of it is known not to be a name (Team, Support, Billing...), so names missing from
  the lists are found too;
* no cue or a weak one ("to", "with"): a first name from the lists with a surname, a given
  name with a listed surname or a particle ("Ludwig van Beethoven"), or - after a weak cue,
  or paired by "and" with another first name - a first name alone.

Names joined by "and" or a comma after a found name share its cue; a run right before an
e-mail address (``"Ana Silva" <ana@...>``) is its display name. Lower-case names count after
"my name is" and, when both words are listed, after a cue ("escalated to james wilson").
A title followed by a brand word ("Dr. Martens", "Mr. Clean") is not a person.
"""

from __future__ import annotations

import re
from typing import Final

from dspy_flywheel.privacy.name_cues import (
    CUE_LAST_WORDS,
    FUNCTION_WORDS,
    INTRO,
    INTRO_PHRASES,
    INTRO_WITH_COLON,
    INTRO_WORDS,
    NONE,
    ROLES,
    SIGN_OFFS,
    STRONG,
    STRONG_PHRASES,
    STRONG_WITH_COLON,
    STRONG_WORDS,
    TITLE_BRANDS,
    TITLES,
    WEAK,
    WEAK_PHRASES,
    WEAK_WORDS,
    name_lists,
)
from dspy_flywheel.privacy.spans import PERSON, PRIORITY, Span
from dspy_flywheel.privacy.validators import split_words

_LATIN = [*range(0x41, 0x7B), *range(0xC0, 0x250), *range(0x1E00, 0x1F00)]
_UPPER = "".join(chr(c) for c in _LATIN if chr(c).isupper())
_LOWER = "".join(chr(c) for c in _LATIN if chr(c).islower())
_APOSTROPHES = "'\u2019"  # ASCII and typographic
# A capitalized word after its first letter: "aria", "'Brien", "cDonald", "ean-Luc".
_TOKEN_TAIL: Final = (
    rf"(?:[{_LOWER}]+|[{_APOSTROPHES}][{_UPPER}][{_LOWER}]+)(?:[{_UPPER}][{_LOWER}]+)?"
    rf"(?:-[{_UPPER}]?[{_LOWER}]+)*"
)
_TOKEN: Final = rf"[{_UPPER}]{_TOKEN_TAIL}"
_PARTICLE: Final = (
    r"(?:van|von|der|den|de|del|della|degli|dela|da|di|du|do|le|la|zu|op|het|bin|bint|ben|ibn|"
    r"abu|al|dos|das|ter|ten)"
)
_RUN: Final = re.compile(
    # The first letter comes first so the scan skips quickly to capitals; the lookbehind then
    # checks the character before it (a 2-char window: previous char + this capital).
    rf"[{_UPPER}](?<![\w@.{_APOSTROPHES}\-].){_TOKEN_TAIL}"
    rf"(?:[ \t]+(?:{_PARTICLE}[ \t]+)?(?:[A-Z]\.[ \t]+)?(?:{_TOKEN})){{0,3}}(?![\w@])"
)
_WORD: Final = re.compile(rf"{_TOKEN}|{_PARTICLE}|[A-Z]\.")
_JOINER: Final = re.compile(r"\s*(?:,|&|\band\b|\bund\b|\bet\b|\be\b|\by\b)\s*")
_DISPLAY_NAME: Final = re.compile(r"[\"\u201d]?\s*<[^<>\s@]+@")
_AND_NEXT: Final = re.compile(rf"\s+(?:and|&)\s+({_TOKEN})")
_LOWER_WORD = rf"[{_LOWER}][{_LOWER}'\-]*"
_LOWER_AFTER_NAME_IS: Final = re.compile(
    r"\b(?:[Mm]y name is|[Nn]ame is|[Nn]ame:)\s+"
    rf"(?P<words>{_LOWER_WORD}(?:[ \t]+{_LOWER_WORD}){{0,2}})"
)
_LOWER_PAIR_AFTER_CUE: Final = re.compile(
    r"(?<!\w)(?:to|with|from|by|for|cc|and|is|am|hi|hello|hey|dear|thanks|contact|ask|"
    rf"call|called|met|told)\s+(?P<first>{_LOWER_WORD})[ \t]+(?P<last>{_LOWER_WORD})\b"
)
_Word = tuple[int, int, str]  # start, end, text
# Stop words at a sentence start, name parts inside a run ("Nguyen Van An").
_NAME_PARTS: Final = frozenset({"An"})


class PersonNameRecognizer:
    name = "person_name"

    def __init__(self) -> None:
        self._lists = name_lists()
        self._stop = self._lists.stop

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        last_end, last_cue = -1, NONE
        display_names = "<" in text and "@" in text
        for run in _RUN.finditer(text):
            run_text = run.group()
            if run_text in self._stop:
                continue  # a lone "The", "Please", "Monday"
            words = [(m.start() + run.start(), m.end() + run.start(), m.group())
                     for m in _WORD.finditer(run_text)]  # fmt: skip
            cue, title = -1, False
            while words and (words[0][2] in self._stop or words[0][2][0].islower()):
                word = words.pop(0)[2]  # "Dear", "Hi", "Mr" inside the run act as cues
                title = word in TITLES
                cue = self._word_cue(word)
            if not words or (title and words[0][2] in TITLE_BRANDS):
                continue
            if cue < 0:
                cue, title = self._cue_before(text, run.start())
                if title and words[0][2] in TITLE_BRANDS:
                    continue
            if last_end >= 0 and _JOINER.fullmatch(text, last_end, run.start()):
                cue = max(cue, min(last_cue, INTRO), WEAK)  # "Hi Tuğba and Eero"
            if display_names and _DISPLAY_NAME.match(text, run.end()):
                cue = STRONG
            name = self._name_words(text, run.start(), run.end(), words, cue)
            if name:
                start, end = name[0][0], name[-1][1]
                canonical = " ".join(w[2] for w in name).casefold()
                spans.append(Span(start, end, PERSON, PRIORITY[PERSON], canonical))
                last_end, last_cue = end, cue
        spans += self._lower_case_names(text)
        return spans

    def _word_cue(self, word: str) -> int:
        if word in STRONG_WORDS or word in TITLES:
            return STRONG
        if word in INTRO_WORDS:
            return INTRO
        return WEAK if word in WEAK_WORDS else NONE

    def _name_words(
        self, text: str, run_start: int, run_end: int, words: list[_Word], cue: int
    ) -> list[_Word]:
        lists = self._lists
        cut_by_stop = False
        for index, word in enumerate(words):
            if word[2] in self._stop and not (index > 0 and word[2] in _NAME_PARTS):
                words, cut_by_stop = words[:index], True
                break
        while words and (words[-1][2][0].islower() or words[-1][2].endswith(".")):
            words.pop()  # a particle or an initial never ends a name
        if not words:
            return []
        first, last = words[0][2], words[-1][2]
        if len(words) > 1 and self._first(first):
            return words  # first name + surname: no cue needed
        if cut_by_stop and cue < STRONG:
            return []  # "Acme Billing", "Jackson Hole Airport"
        if cue == STRONG and not cut_by_stop:
            return words
        at_start = self._sentence_start(text, run_start)
        if (
            len(words) > 1
            and self._given(first)
            and (self._surname(last) or any(w[2][0].islower() for w in words))
            and (first not in lists.given_ambiguous or cue > NONE or not at_start)
        ):
            return words  # "Bartholomew Quigley", "Ludwig van Beethoven"
        if cue == INTRO and not cut_by_stop and (len(words) > 1 or not self._ambiguous(first)):
            return words  # "Hi Siobhan", "this is Nguyen Van An"
        if cue == STRONG:
            return words if self._first(first) else []
        possessive = text.startswith(("'s", "\u2019s"), run_end)  # "Brian's note"
        paired = self._paired(text, run_end) if len(words) == 1 else False
        for index, (_, _, token) in enumerate(words):
            has_surname = index + 1 < len(words)
            alone_ok = (cue >= WEAK and index == 0) or ((possessive or paired) and not has_surname)
            if (self._first(token) or self._given(token)) and (has_surname or alone_ok):
                return words[index:]
            if (
                token in lists.first_ambiguous
                and has_surname
                and (cue != NONE or index > 0 or not at_start)
            ):
                return words[index:]
        return []

    def _first(self, token: str) -> bool:
        """A curated first name; "Jean-Luc" is looked up as "Jean" and then is never
        ambiguous."""
        word, hyphen, _ = token.partition("-")
        return word in self._lists.first or (hyphen != "" and word in self._lists.first_ambiguous)

    def _given(self, token: str) -> bool:
        word = token.partition("-")[0]
        return word in self._lists.given or word in self._lists.first

    def _surname(self, token: str) -> bool:
        return token in self._lists.surnames

    def _ambiguous(self, token: str) -> bool:
        lists = self._lists
        return (
            token in lists.first_ambiguous
            or token in lists.given_ambiguous
            or token in lists.surnames_ambiguous
        )

    def _paired(self, text: str, end: int) -> bool:
        """ "Rashid and Amara": a first name followed by "and" + another first name."""
        match = _AND_NEXT.match(text, end)
        return match is not None and (self._first(match[1]) or self._given(match[1]))

    def _cue_before(self, text: str, start: int) -> tuple[int, bool]:
        """(cue strength, whether the cue is a title) of the words before a run."""
        before = text[max(0, start - 40) : start]
        stripped = before.rstrip(" \t\r\n,:-=\"'\u201c(")
        if not stripped:
            return NONE, False
        gap = before[len(stripped) :]
        last = stripped[max(stripped.rfind(" "), stripped.rfind("\n"), stripped.rfind("\t")) + 1 :]
        last = last.rstrip(".!")
        if last in TITLES:
            return STRONG, True
        if last in ROLES:
            return STRONG, False
        if last.lower() not in CUE_LAST_WORDS:
            return NONE, False  # the common case, decided without building phrases
        colon = ":" in gap or "=" in gap
        own_line = "\n" in gap
        lowered = [w.lower().rstrip(".!") for w in stripped.split()[-3:]]
        cue = NONE
        for size in range(1, len(lowered) + 1):
            phrase = " ".join(lowered[-size:])
            if phrase in STRONG_PHRASES or (colon and phrase in STRONG_WITH_COLON):
                return STRONG, False
            if own_line and phrase in SIGN_OFFS:
                return STRONG, False  # "Cheers,\nSaoirse"
            if phrase in INTRO_PHRASES or (colon and phrase in INTRO_WITH_COLON):
                cue = max(cue, INTRO)
            elif phrase in WEAK_PHRASES:
                cue = max(cue, WEAK)
        return cue, False

    def _lower_case_names(self, text: str) -> list[Span]:
        """ "my name is keanu kahale"; "escalated to james wilson" (both words listed)."""
        spans: list[Span] = []
        if "ame is" in text or "ame:" in text:
            spans += self._after_name_is(text)
        lists = self._lists
        if lists.lower_first.keys().isdisjoint(split_words(text)):
            return spans  # no lower-case first name at all: the common case
        for match in _LOWER_PAIR_AFTER_CUE.finditer(text):
            first, last = match.group("first"), match.group("last")
            if {first, last} & FUNCTION_WORDS or first not in lists.lower_first:
                continue
            surname = last.capitalize()
            if surname in lists.surnames or (
                first.capitalize() in lists.first and surname in lists.surnames_ambiguous
            ):
                start, end = match.start("first"), match.end("last")
                spans.append(Span(start, end, PERSON, PRIORITY[PERSON], text[start:end]))
        return spans

    def _after_name_is(self, text: str) -> list[Span]:
        spans = []
        for match in _LOWER_AFTER_NAME_IS.finditer(text):
            words = []
            for word in match.group("words").split():
                if word in FUNCTION_WORDS:
                    break
                words.append(word)
            if words and (words[0] in self._lists.lower_first or len(words) > 1):
                start = match.start("words")
                end = start + len(" ".join(words))
                if text[start:end] == " ".join(words):
                    spans.append(Span(start, end, PERSON, PRIORITY[PERSON], text[start:end]))
        return spans

    @staticmethod
    def _sentence_start(text: str, start: int) -> bool:
        before = text[max(0, start - 16) : start].rstrip(" \t\"'“(")
        return (not before and start < 16) or (before != "" and before[-1] in ".!?\n:;")
