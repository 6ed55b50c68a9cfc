"""PII anonymization for training examples: pluggable recognizers, consistent placeholders.

>>> anonymizer = Anonymizer(key=b"0123456789abcdef0123456789abcdef")
>>> anonymizer.anonymize("Mail ana@example.com or ana@example.com", scope="w1").text
'Mail <EMAIL_1> or <EMAIL_1>'

Write your own recognizer (any object with ``name`` and ``find(text) -> list[Span]``) and
add it with ``registry.register(...)``; see :mod:`dspy_flywheel.privacy.spans`.
"""

from dspy_flywheel.privacy.anonymizer import AnonymizedText, AnonymizedValue, Anonymizer, JsonValue
from dspy_flywheel.privacy.contact import EmailRecognizer
from dspy_flywheel.privacy.credentials import SecretRecognizer
from dspy_flywheel.privacy.errors import PrivacyError, RecognizerError, UnsupportedValueError
from dspy_flywheel.privacy.financial import CreditCardRecognizer, IbanRecognizer, SsnRecognizer
from dspy_flywheel.privacy.names import PersonNameRecognizer
from dspy_flywheel.privacy.national_ids import NationalIdRecognizer
from dspy_flywheel.privacy.network import IPv4Recognizer, IPv6Recognizer
from dspy_flywheel.privacy.phones import PhoneRecognizer
from dspy_flywheel.privacy.placeholders import (
    InMemoryPlaceholderStore,
    PlaceholderStore,
    value_digest,
)
from dspy_flywheel.privacy.registry import RecognizerRegistry, default_recognizers
from dspy_flywheel.privacy.spacy_names import SpacyPersonRecognizer
from dspy_flywheel.privacy.spans import (
    BUILTIN_KINDS,
    CREDIT_CARD,
    EMAIL,
    IBAN,
    IPV4,
    IPV6,
    NATIONAL_ID,
    PERSON,
    PHONE,
    PRIORITY,
    SECRET,
    SSN,
    Recognizer,
    Span,
    resolve_overlaps,
)

__all__ = [
    "BUILTIN_KINDS", "CREDIT_CARD", "EMAIL", "IBAN", "IPV4", "IPV6", "NATIONAL_ID", "PERSON",
    "PHONE", "PRIORITY", "SECRET", "SSN", "AnonymizedText", "AnonymizedValue", "Anonymizer",
    "CreditCardRecognizer", "EmailRecognizer", "IPv4Recognizer", "IPv6Recognizer", "IbanRecognizer",
    "InMemoryPlaceholderStore", "JsonValue", "NationalIdRecognizer", "PersonNameRecognizer",
    "PhoneRecognizer", "PlaceholderStore", "PrivacyError", "Recognizer", "RecognizerError",
    "RecognizerRegistry", "SecretRecognizer", "SpacyPersonRecognizer", "Span", "SsnRecognizer",
    "UnsupportedValueError", "default_recognizers", "resolve_overlaps", "value_digest",
]  # fmt: skip
