"""National identity and tax numbers of many countries (US SSNs: :mod:`.financial`).

Found two ways:

* by a shape with a checksum or a structure distinctive enough to stand alone: UK National
  Insurance numbers written in pairs ("JT 48 27 61 C"), French NIR with its key, Brazilian
  CPF ("529.982.247-25") with its check digits, Spanish DNI/NIE with their letter, Italian
  codice fiscale, Indian PAN of a person (4th letter P), Aadhaar in 4-4-4 groups that pass
  Verhoeff;
* after an ID cue ("Steuer-ID", "passport number", "Aadhaar", "CPF", "NI no", "DNI", "RG",
  "numéro de sécu", "PESEL"...): the value that follows, valid or not, when it has 5-24
  letters and digits of which at least 3 are digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from dspy_flywheel.privacy.spans import NATIONAL_ID, PRIORITY, Span
from dspy_flywheel.privacy.validators import (
    cpf_valid,
    digit_count,
    dni_letter_valid,
    lower_text,
    nir_valid,
    split_words,
    verhoeff_valid,
)

# All shapes in one scan: it starts with a character class, so the engine skips lowercase
# text fast; the lookbehind after the first character checks the one before it, and each
# branch re-checks the first character and ends in an empty group naming the shape.
_SHAPES: Final = re.compile(
    r"[0-9A-Z](?<![\w.\-].)(?:"
    r"(?<=[12]) ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?P<nir>)"
    r"|(?<=\d)\d{2}\.\d{3}\.\d{3}-\d{2}(?P<cpf>)"
    r"|(?<=\d)\d{7}-?[A-Z](?P<dni>)|(?<=[XYZ])-?\d{7}-?[A-Z](?P<nie>)"
    r"|(?<=[2-9])\d{3} \d{4} \d{4}(?![.\-]\d| \d)(?P<aadhaar>)"
    r"|(?<=[A-Z])[A-Z]{5}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z](?P<codice_fiscale>)"
    r"|(?<=[A-Z])[A-Z]{2}P[A-Z]\d{4}[A-Z](?P<pan>)"
    r"|(?<=[A-CEGHJ-PR-TW-Z])[A-CEGHJ-NPR-TW-Z] \d{2} \d{2} \d{2} [A-D](?P<nino>)"
    r")(?![\w-])"
)
_NINO_NEVER: Final = ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")
_SHAPE_VALID: Final[dict[str, Callable[[str], bool]]] = {
    "nir": nir_valid,
    "cpf": cpf_valid,
    "dni": dni_letter_valid,
    "nie": dni_letter_valid,
    "aadhaar": verhoeff_valid,
    "nino": lambda compact: compact[:2] not in _NINO_NEVER,
}
_NOT_ID_CUE: Final = re.compile(
    r"(?i)\b(?:order|tracking|invoice|ref|reference|ticket|case|parcel|shipment|meeting|"
    r"sku|serial|part|item|lot|batch|account|acct|transaction)\b[^\d\n]{0,16}$"
)

_LONG_CUES = (
    r"national insurance(?: number| no\.?)?|ni number|ni no\.?|nino|national id(?:entity)?"
    r"(?: card| number| no\.?)?|identity card(?: number| no\.?)?|id card(?: number| no\.?)?|"
    r"id number|personalausweis(?:-?nr\.?|nummer)?|ausweis(?:-?nr\.?|nummer)?|reisepass|"
    r"passport(?: number| no\.?| #)?|passeport|pasaporte|passaporte|steuer-?id|"
    r"steuer-?identifikationsnummer|steuernummer|tax id|tax number|tax identification number|"
    r"sécu|secu|sécurité sociale|securite sociale|numéro de sécurité sociale|insee|"
    r"carte d'identité|carte d\u2019identité|aadhaar|aadhar|uidai|pan card|pan no\.?|pan number|"
    r"codice fiscale|pesel|personnummer|fødselsnummer|henkilötunnus|social insurance number|"
    r"driver'?s licen[cs]e(?: number| no\.?)?|driving licen[cs]e(?: number| no\.?)?|"
    r"licen[cs]e number|voter id|c[ée]dula|curp|mykad|nric|hkid|emirates id|iqama|"
    r"kimlik(?: no)?|burgerservicenummer|identidade|carteira de identidade"
)
_SHORT_CUES = r"NI|PAN|CPF|RG|CNH|DNI|NIE|NIF|NIR|SIN|TFN|BSN|CNI|TIN"
_CUE: Final = re.compile(
    rf"(?:(?i:(?<!\w)(?:{_LONG_CUES}))|(?<!\w)(?:{_SHORT_CUES}))(?!\w)"
    r"(?:[\s:#=.-]|\b(?i:is|was|no|nr|number|num|n°|nº|my|the|é|es|est|ist)(?!\w))*"
)
# The words every cue starts with, lower-cased, also with the punctuation that may follow them:
# one set test on the text's (cached) words decides whether the cue scan is worth running.
_CUE_FIRST_WORDS: Final = [
    "national", "ni", "nino", "identity", "id", "personalausweis", "personalausweis-nr",
    "ausweis", "ausweis-nr", "ausweisnummer", "reisepass", "passport", "passeport", "pasaporte",
    "passaporte", "steuer-id", "steuerid", "steueridentifikationsnummer", "steuernummer", "tax",
    "sécu", "secu", "sécurité", "securite", "numéro", "insee", "carte", "aadhaar", "aadhar",
    "uidai", "pan", "codice", "pesel", "personnummer", "fødselsnummer", "henkilötunnus",
    "social", "driver's", "drivers", "driving", "license", "licence", "voter", "cédula",
    "cedula", "curp", "mykad", "nric", "hkid", "emirates", "iqama", "kimlik",
    "burgerservicenummer", "identidade", "carteira", "cpf", "rg", "cnh", "dni", "nie", "nif",
    "nir", "sin", "tfn", "bsn", "cni", "tin",
]  # fmt: skip
_CUE_WORDS: Final = dict.fromkeys(  # a dict: see name_cues.Words
    f"{head}{w}{tail}"
    for w in _CUE_FIRST_WORDS
    for head in ("", "(")
    for tail in ("", ":", ",", ".", "#", ":#", "-", ")")
)
_VALUE_TOKEN: Final = re.compile(r"[A-Za-z0-9]+")
MAX_ID_CHARS: Final = 24
PRIORITY_ID: Final = PRIORITY[NATIONAL_ID]


class NationalIdRecognizer:
    name = "national_id"

    def find(self, text: str) -> list[Span]:
        spans: list[Span] = []
        digits = digit_count(text)
        if digits < 4:
            return spans
        if not _CUE_WORDS.keys().isdisjoint(split_words(lower_text(text))):
            spans += self._after_cues(text)
        if digits >= 9:
            spans += self._shapes(text)
        return spans

    @staticmethod
    def _after_cues(text: str) -> list[Span]:
        spans = []
        for match in _CUE.finditer(text):
            start = match.end()
            if start >= len(text) or not text[start].isalnum():
                continue
            if _NOT_ID_CUE.search(text[max(0, match.start() - 32) : match.start()]):
                continue  # "order ID number ..."
            end = _value_end(text, start)
            alnum = "".join(c for c in text[start:end] if c.isalnum())
            if 5 <= len(alnum) <= MAX_ID_CHARS and sum(c.isdigit() for c in alnum) >= 3:
                spans.append(Span(start, end, NATIONAL_ID, PRIORITY_ID, alnum.upper()))
        return spans

    @staticmethod
    def _shapes(text: str) -> list[Span]:
        spans = []
        for match in _SHAPES.finditer(text):
            shape = match.lastgroup or ""
            compact = "".join(c for c in match.group() if c.isalnum())
            valid = _SHAPE_VALID.get(shape)
            if valid is not None and not valid(compact):
                continue
            start = match.start()
            if shape == "aadhaar" and text[max(0, start - 2) : start - 1].isdigit():
                continue  # the tail of a longer digit-group number
            if _NOT_ID_CUE.search(text[max(0, start - 32) : start]):
                continue
            spans.append(Span(start, match.end(), NATIONAL_ID, PRIORITY_ID, compact))
        return spans


def _value_end(text: str, start: int) -> int:
    """Keep the tokens of an ID ("47 036 892 816", "12.345.678-9", "L01X00T47"), not the
    words after it: tokens joined by one separator; after a space a token counts only if
    it holds a digit or is one or two capitals ("JT 48 27 61 C")."""
    end, count = start, 0
    for token in _VALUE_TOKEN.finditer(text, start):
        gap = text[end : token.start()]
        word = token.group()
        if token.start() > start:
            if len(gap) != 1 or gap not in " ./-":
                break
            letters_only = not any(c.isdigit() for c in word)
            if gap == " " and letters_only and (len(word) > 2 or not word.isupper()):
                break
        count += len(word)
        if count > MAX_ID_CHARS:
            break
        end = token.end()
    return end
