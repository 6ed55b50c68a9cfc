"""Vocabulary of the person-name recognizer: name lists, titles, cue phrases by strength.

Cue strength of the words right before a capitalized run:

* ``STRONG``: the run is a name ("my name is", "Dear", "Signed", a title, a sign-off on its
  own line: "Regards,\\n", "Cheers,\\n");
* ``INTRO``: the run is a name unless its words are known not to be one ("Hi", "Hello",
  "Bonjour", "this is", "I'm", "ask for", "spoke with", "according to", "Thanks,");
* ``WEAK``: a known first name alone counts ("to", "from", "with", "cc");
* ``NONE``: only a known first name with a surname counts.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Final, NamedTuple

NONE, WEAK, INTRO, STRONG = 0, 1, 2, 3

TITLES: Final = frozenset(
    [
        "Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof", "Professor", "Sir", "Dame", "Madam",
        "Mme", "Mlle", "Madame", "Mademoiselle", "Monsieur", "Herr", "Frau", "Sr", "Sra",
        "Srta", "Señor", "Señora", "Senhor", "Senhora", "Signor", "Signora", "Sig", "Sigra",
        "Dott", "Shri", "Smt", "Dhr", "Mevr", "Pan", "Pani",
    ]
)  # fmt: skip
# Words that make "title + word" a brand, product or character, not a person.
TITLE_BRANDS: Final = frozenset(
    [
        "Martens", "Clean", "Pepper", "Oetker", "Muscle", "Scholl", "Scholl's", "Bronner",
        "Bronner's", "Sheen", "Proper", "Coffee", "Potato", "Pibb", "Jart", "Teal's", "Whippy",
        "Freeze", "Right", "Universe", "Robot", "Who", "Strange", "Bean", "Fixit", "Softy",
        "Noodle", "Brown's", "Kipling", "Goodbar", "Peanut", "Pac-Man", "Olympia", "World",
    ]
)  # fmt: skip
ROLES: Final = frozenset(
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
GREETINGS: Final = frozenset(
    [
        "hi", "hello", "hey", "hallo", "bonjour", "bonsoir", "hola", "olá", "ola", "oi", "ciao",
        "salut", "namaste", "greetings", "howdy", "servus", "moin", "morning", "good morning",
        "good afternoon", "good evening",
    ]
)  # fmt: skip
SIGN_OFFS: Final = frozenset(
    [
        "thanks", "thank you", "many thanks", "cheers", "best", "regards", "best regards",
        "kind regards", "warm regards", "sincerely", "yours", "yours truly", "all the best",
        "greetings", "br", "ta", "cordialement", "atenciosamente", "saludos", "grüße", "gruß",
        "mfg", "abraços", "obrigado", "obrigada", "gracias", "merci", "danke", "grazie",
    ]
)  # fmt: skip
STRONG_PHRASES: Final = frozenset(
    [
        "my name is", "my name's", "name is", "signed", "sincerely", "regards", "dear",
        "attn", "attention", "patient", "customer", "client", "employee", "applicant",
        "author", "assignee", "reporter", "owner", "contact person", "sender", "recipient",
        "je m'appelle", "me llamo", "mi nombre es", "meu nome é", "ich heiße", "ich bin",
        *(f"{verb} by" for verb in ("reported", "assigned", "written", "authored",
                                    "submitted", "approved", "requested", "signed")),
        *(f"{owner} {rel}" for owner in ("my", "our", "his", "her", "their") for rel in _RELATIONS),
    ]
)  # fmt: skip
STRONG_WITH_COLON: Final = frozenset(["name", "full name", "first name", "last name", "signed"])
INTRO_WITH_COLON: Final = frozenset(["from", "to", "cc", "bcc", "contact", "reply-to"])
INTRO_PHRASES: Final = frozenset(
    [
        *GREETINGS, *SIGN_OFFS, "this is", "i am", "i'm", "it's", "ask for", "asked for",
        "speak to", "speak with", "spoke to", "spoke with", "talked to", "talked with",
        "talk to", "according to", "escalated to", "forward to", "forwarded to",
        "assigned to", "reach out to", "reached out to", "handed to", "c'est", "soy",
        "sou", "aqui é",
    ]
)  # fmt: skip
WEAK_PHRASES: Final = frozenset(
    [
        "ask", "asked", "contact", "call", "called", "email", "emailed", "ping", "pinged",
        "message", "messaged", "text", "texted", "meet", "met", "told", "tell", "inform",
        "informed", "notify", "notified", "cc'd", "from", "to", "cc", "with", "and", "by",
        "for", "thank",
    ]
)  # fmt: skip
CUE_LAST_WORDS: Final = frozenset(
    phrase.rsplit(" ", 1)[-1]
    for phrase in (
        *STRONG_PHRASES,
        *STRONG_WITH_COLON,
        *INTRO_WITH_COLON,
        *INTRO_PHRASES,
        *WEAK_PHRASES,
    )
)
# Capitalized words inside a run that act as its cue ("Dear Maria", "Hi Siobhan").
STRONG_WORDS: Final = frozenset({"Dear", "Signed", "Sincerely", "Regards", "Attn"})
INTRO_WORDS: Final = frozenset(
    {"Hi", "Hello", "Hey", "Hallo", "Bonjour", "Bonsoir", "Hola", "Olá", "Ola", "Oi", "Ciao",
     "Salut", "Namaste", "Greetings", "Howdy", "Servus", "Moin", "Thanks", "Cheers", "Best"}
)  # fmt: skip
WEAK_WORDS: Final = frozenset({"Ask", "Meet"})
# Lower-case words that never belong to a name written in lower case ("my name is on ...").
FUNCTION_WORDS: Final = frozenset(
    [
        "a", "an", "the", "and", "or", "but", "if", "of", "on", "in", "at", "to", "for", "from",
        "by", "with", "is", "are", "was", "were", "be", "been", "am", "not", "no", "yes", "also",
        "still", "already", "now", "here", "there", "this", "that", "these", "those", "it", "its",
        "i", "me", "my", "mine", "we", "our", "you", "your", "he", "his", "she", "her", "they",
        "their", "them", "as", "so", "please", "thanks", "thank", "sorry", "hi", "hello", "below",
        "above", "attached", "correct", "wrong", "missing", "listed", "same", "different",
        "spelled", "written", "required", "wrong", "right", "just", "only", "really", "very", "too",
        "again", "then", "when", "where", "what", "which", "who", "how", "why",
    ]
)  # fmt: skip


# Name lists are dicts with ``None`` values, not sets: the garbage collector stops tracking a
# dict that holds only strings, while it walks every entry of a (frozen)set at each full
# collection - with ~40k names that cost the collector ~6 us per event (measured).
Words = dict[str, None]


class NameLists(NamedTuple):
    first: Words  # curated first names: one plus any capitalized word is a name
    first_ambiguous: Words  # also ordinary words (Will, Grace): need a surname
    given: Words  # given names of many origins: need a surname or a cue
    given_ambiguous: Words
    surnames: Words
    surnames_ambiguous: Words
    stop: Words  # capitalized words that end or cannot start a name
    lower_first: Words  # first and given names in lower case, not ordinary words


def _read(filename: str) -> tuple[Words, Words]:
    """(plain entries, entries marked with a trailing *) of a data file."""
    text = resources.files("dspy_flywheel.privacy").joinpath(f"data/{filename}").read_text("utf-8")
    plain: Words = {}
    ambiguous: Words = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        for entry in line.split():
            (ambiguous if entry.endswith("*") else plain)[entry.rstrip("*")] = None
    return plain, ambiguous


@lru_cache(maxsize=1)
def name_lists() -> NameLists:
    first, first_ambiguous = _read("first_names.txt")
    given, given_ambiguous = _read("given_names.txt")
    surnames, surnames_ambiguous = _read("surnames.txt")
    stop, _ = _read("not_names.txt")
    given = {name: None for name in given if name not in first_ambiguous}
    stop.update(dict.fromkeys(TITLES))
    lower_first = {
        name.lower(): None for name in (*first, *given) if name.lower() not in FUNCTION_WORDS
    }
    return NameLists(
        first, first_ambiguous, given, given_ambiguous, surnames, surnames_ambiguous, stop,
        lower_first,
    )  # fmt: skip
