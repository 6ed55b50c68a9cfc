"""API keys, bearer tokens, private keys and high-entropy ``key=value`` secrets."""

from __future__ import annotations

import re
from typing import Final

from dspy_flywheel.privacy.spans import PRIORITY, SECRET, Span
from dspy_flywheel.privacy.validators import shannon_entropy

GENERIC_SECRET_PRIORITY: Final = 45

# Vendor formats: whole match is the secret.
_PREFIXED: Final = re.compile(
    r"(?<![\w-])(?:"
    r"sk-(?:proj-|ant-(?:api\d\d-)?|or-v1-)?[A-Za-z0-9_\-]{20,}"  # OpenAI, Anthropic, OpenRouter
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"  # GitHub
    r"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}"  # AWS access key ids
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google API key
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|npm_[A-Za-z0-9]{36}"  # npm
    r"|SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"  # SendGrid
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # JWT
    r")(?![\w-])"
)
_PRIVATE_KEY: Final = re.compile(
    r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]{16,}?-----END (?:[A-Z]+ )*PRIVATE KEY-----"
)
# The token after "Bearer"/"Basic"/"token" in an Authorization value.
_AUTH_SCHEME: Final = re.compile(
    r"(?i)\b(?:bearer|authorization:\s*(?:basic|token))\s+(?P<value>[A-Za-z0-9\-._~+/]{16,}=*)"
)
_ASSIGNED: Final = re.compile(
    r"(?i)(?<!\w)(?P<key>"
    r"(?:[a-z0-9]+[_\-])*(?:api[_\-]?key|apikey|secret(?:[_\-]?key)?|client[_\-]?secret|"
    r"(?:access|auth|refresh|session|bearer|api)[_\-]?token|token|password|passwd|pwd|"
    r"private[_\-]?key|x-api-key|credentials?)(?:[_\-][a-z0-9]+)*"
    r")[\"']?\s*(?:=|:|=>)\s*[\"']?(?P<value>[^\s\"'`,;&<>(){}\[\]]{6,256})"
)
_PASSWORD_KEY: Final = re.compile(r"(?i)(?:password|passwd|pwd)$")
_PLACEHOLDER_VALUE: Final = re.compile(
    r"^(?:\$|%|\*|x{4,}|your[_\-]|<|\{)|^(?:null|none|true|false|redacted|changeme|example)$",
    re.IGNORECASE,
)


_VENDOR_PREFIXES: Final = (
    "sk-", "sk_", "rk_", "pk_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-",
    "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "xox", "AIza", "hf_", "npm_", "SG.", "eyJ",
)  # fmt: skip
_KEY_WORDS: Final = ("key", "secret", "token", "pass", "pwd", "credential")


def _looks_random(value: str, min_length: int = 12, min_entropy: float = 3.0) -> bool:
    """Long, mixes letters and digits, and spreads over many symbols."""
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    return (
        len(value) >= min_length
        and has_digit
        and has_alpha
        and shannon_entropy(value) >= min_entropy
    )


class SecretRecognizer:
    name = "secret"

    def find(self, text: str) -> list[Span]:
        # Substring checks (C speed) decide which patterns are worth a regex scan.
        spans = []
        long_token = "-----" in text or max(map(len, text.split()), default=0) >= 16
        if long_token and any(prefix in text for prefix in _VENDOR_PREFIXES):
            spans += [Span(m.start(), m.end(), SECRET, PRIORITY[SECRET], m.group())
                      for m in _PREFIXED.finditer(text)]  # fmt: skip
        if long_token and "PRIVATE KEY-----" in text:
            spans += [Span(m.start(), m.end(), SECRET, PRIORITY[SECRET], m.group())
                      for m in _PRIVATE_KEY.finditer(text)]  # fmt: skip
        lowered = text.lower()
        if long_token and ("bearer" in lowered or "authorization" in lowered):
            spans += self._auth_values(text)
        if ("=" in text or ":" in text) and any(word in lowered for word in _KEY_WORDS):
            spans += self._assigned_values(text)
        return spans

    @staticmethod
    def _auth_values(text: str) -> list[Span]:
        spans = []
        for match in _AUTH_SCHEME.finditer(text):
            value = match.group("value").rstrip(".")  # a sentence's full stop
            if _looks_random(value, min_length=16, min_entropy=2.5):
                start = match.start("value")
                spans.append(Span(start, start + len(value), SECRET, PRIORITY[SECRET], value))
        return spans

    @staticmethod
    def _assigned_values(text: str) -> list[Span]:
        spans = []
        for match in _ASSIGNED.finditer(text):
            value = match.group("value").rstrip(".")  # a sentence's full stop
            if len(value) < 6 or _PLACEHOLDER_VALUE.search(value):
                continue
            is_password = _PASSWORD_KEY.search(match.group("key")) is not None
            if is_password or _looks_random(value):
                start = match.start("value")
                end = start + len(value)
                spans.append(Span(start, end, SECRET, GENERIC_SECRET_PRIORITY, value))
        return spans
