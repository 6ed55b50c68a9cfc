"""API keys, bearer tokens, passwords, private keys and long random tokens.

Four ways, from most to least certain:

* a vendor prefix (``sk-``, ``ghp_``, ``AKIA``, ``glpat-``, ``hf_``, ``xoxb-``...) followed by
  any plausible tail: a shorter or longer tail than the vendor documents still counts;
* a credential written into a URL (``postgres://user:PASSWORD@host``), a private-key block,
  or an ``Authorization: Bearer`` value;
* a cue word ("key", "token", "secret", "password", ``api_key=``...) followed, after at most a
  few filler words ("is", "here is my", ":"), by a value: for passwords any value that is not
  a plain word or a mask; for keys and tokens a random-looking one (hex and UUIDs included:
  ambiguous with a cue means removed);
* without a cue, a token of 20+ characters that mixes upper case, lower case and digits the
  way random strings do (class changes between neighbours); hex digests, UUIDs, paths and
  anything after a hash cue ("sha256:", "integrity=") are left alone.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Final

from dspy_flywheel.privacy.spans import PRIORITY, SECRET, Span, resolve_overlaps
from dspy_flywheel.privacy.validators import literal_union, lower_text, shannon_entropy, split_words

GENERIC_SECRET_PRIORITY: Final = 45
_TAIL = r"[A-Za-z0-9_\-]"
# Vendor formats: prefix + any plausible tail (whole match is the secret).
_PREFIXED: Final = re.compile(
    r"(?<![\w-])(?:"
    rf"sk-(?:proj-|ant-(?:api\d\d-|admin\d\d-)?|or-v1-|svcacct-|admin-)?{_TAIL}{{16,}}"
    rf"|(?:sk|rk|pk|whsec)_(?:live|test)_{_TAIL}{{8,}}|whsec_{_TAIL}{{16,}}"  # Stripe
    rf"|gh[pousr]_{_TAIL}{{12,}}|github_pat_{_TAIL}{{16,}}"  # GitHub
    rf"|gl(?:pat|dt|rt|ptt|cbt|imt|oas|soat|ffct)-{_TAIL}{{12,}}"  # GitLab
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{12,24}"  # AWS access key ids
    rf"|xox[abposre]-{_TAIL}{{8,}}|xapp-{_TAIL}{{12,}}"  # Slack
    rf"|AIza{_TAIL}{{20,}}|ya29\.{_TAIL}{{16,}}"  # Google
    rf"|(?:hf|npm|gsk|r8|dop_v1|lin_api|shpat|shpss|shpca|shppa)_{_TAIL}{{12,}}"
    rf"|(?:pypi|xai|pplx|nvapi|sq0atp|sq0csp)-{_TAIL}{{12,}}"
    rf"|SG\.{_TAIL}{{8,}}\.{_TAIL}{{8,}}"  # SendGrid
    rf"|eyJ{_TAIL}{{8,}}\.eyJ{_TAIL}{{8,}}\.{_TAIL}{{8,}}"  # JWT
    r")(?![\w-])"
)
# Literal alternations: the regex engine skips to their first letters (C speed).
_VENDOR_HINT: Final = re.compile(
    literal_union(
        (
            "sk-", "sk_", "rk_", "pk_", "whsec_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
            "github_pat_", "glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "glimt-", "gloas-",
            "glsoat-", "glffct-", "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA",
            "xox", "xapp-", "AIza", "ya29.", "hf_", "npm_", "gsk_", "r8_", "dop_v1_", "lin_api_",
            "shp", "pypi-", "xai-", "pplx-", "nvapi-", "sq0", "SG.", "eyJ",
        )
    )
)  # fmt: skip
_PRIVATE_KEY: Final = re.compile(
    r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]{16,}?-----END (?:[A-Z]+ )*PRIVATE KEY-----"
)
_URL_CREDENTIAL: Final = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]{1,64}:(?P<value>[^\s@/]{1,128})@[\w.\-]"
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
_PASSWORD_WORDS = (
    r"password|passwd|pwd|passcode|passphrase|mot de passe|passwort|kennwort|senha|"
    r"contraseña|contrasena|wachtwoord"
)
_KEY_WORDS = r"key|api key|secret|token|credential|credentials|access key|secret key|apikey"
# Scanned over the lower-cased text (same offsets): a case-sensitive alternation of literals
# lets the regex engine skip to candidate first letters, ~5x faster than (?i).
_PHRASE: Final = re.compile(
    rf"(?<![\w-])(?:(?P<password>{_PASSWORD_WORDS})|(?P<key>{_KEY_WORDS}))(?![\w-])"
    r"(?P<filler>(?:\s*(?:[:=#]|=>|-)\s*|\s+(?:is|was|now|here|of|to|be|will be|should be|"
    r"ist|est|es|é|är|er|lautet|mein|meu|mon|mi|"
    r"my|the|our|your|a|new|old|value|string|i used|i pasted|that i pasted)(?!\w))*\s*)"
    r"[\"'`]?(?P<value>[^\s\"'`,;<>(){}\[\]]{4,256})"
)
_PHRASE_ANY_CASE: Final = re.compile(_PHRASE.pattern, re.IGNORECASE)
# Cheap test (lower-cased text) before the costly _ASSIGNED scan: a key word, then = or :.
_ASSIGNED_HINT: Final = re.compile(
    r"(?:key|secret|token|password|passwd|pwd|credential)[\w\-]*[\"']?\s*(?:=|:)"
)
_PLACEHOLDER_VALUE: Final = re.compile(
    r"^(?:\$|%|\*|x{4,}|your[_\-]|<|\{)|^(?:null|none|true|false|redacted|changeme|example)$",
    re.IGNORECASE,
)
_LONG_TOKEN: Final = re.compile(r"(?<![\w/+=\-.:])[A-Za-z0-9_\-+/]{20,}={0,2}(?![\w/+=\-]|\.\w)")
_HASH_CUE: Final = re.compile(
    r"(?i)(?:sha\d*|md5|blake\d*|digest|integrity|checksum|hash|commit|etag|fingerprint|"
    r"nonce|sri)\W{0,3}$"
)
_KEY_WORD_HINT: Final = re.compile(
    literal_union(
        ("key", "secret", "token", "passw", "passc", "passph", "passe", "pwd", "credential",
         "kennwort", "senha", "contrase", "wachtwoord")
    )
)  # fmt: skip


def _looks_random(value: str, min_length: int = 12, min_entropy: float = 3.0) -> bool:
    """Long, mixes letters and digits, and spreads over many symbols."""
    has_digit = any(map(str.isdigit, value))
    has_alpha = any(map(str.isalpha, value))
    return (
        len(value) >= min_length
        and has_digit
        and has_alpha
        and shannon_entropy(value) >= min_entropy
    )


def _class_changes(value: str) -> float:
    """Share of neighbouring letters/digits whose class (upper, lower, digit) differs:
    ~0.6 for random base62, ~0.1-0.2 for identifiers and file names."""
    classes = [0 if c.isdigit() else 1 if c.isupper() else 2 for c in value if c.isalnum()]
    if len(classes) < 2:
        return 0.0
    return sum(a != b for a, b in pairwise(classes)) / (len(classes) - 1)


def random_token(value: str) -> bool:
    """A long token that reads as random: 2+ each of upper, lower and digits, many class
    changes, not hex (digests, UUIDs)."""
    core = value.rstrip("=")
    upper = sum(map(str.isupper, core))
    lower = sum(map(str.islower, core))
    digits = sum(map(str.isdigit, core))
    return (
        upper >= 2 and lower >= 2 and digits >= 2
        and _class_changes(core) >= 0.3
        and shannon_entropy(core) >= 3.5
    )  # fmt: skip


def _secret_after_cue(value: str, password: bool, assigned: bool) -> bool:
    if _PLACEHOLDER_VALUE.search(value):
        return False
    if password:
        # "password: letmein" and "my password is Sunshine2024!" yes; "the password reset
        # link" and "password: required" no.
        if assigned:
            return len(value) >= 6 and not (value.isalpha() and value.islower())
        return len(value) >= 6 and not value.isalpha()
    return _looks_random(value) or (len(value) >= 16 and random_token(value))


class SecretRecognizer:
    name = "secret"

    def find(self, text: str) -> list[Span]:
        # Substring checks (C speed) decide which patterns are worth a regex scan.
        spans: list[Span] = []
        words = split_words(text)
        longest = max(map(len, words), default=0)
        # A vendor key is one word of 12+ characters holding a prefix: test only such words.
        if longest >= 12 and any(_VENDOR_HINT.search(w) for w in words if len(w) >= 12):
            spans += self._prefixed(text)
        if longest >= 16 and "PRIVATE KEY-----" in text:
            spans += [Span(m.start(), m.end(), SECRET, PRIORITY[SECRET], m.group())
                      for m in _PRIVATE_KEY.finditer(text)]  # fmt: skip
        if "://" in text and "@" in text:
            spans += [_span(m, PRIORITY[SECRET]) for m in _URL_CREDENTIAL.finditer(text)]
        lowered = lower_text(text)
        if longest >= 16 and ("bearer" in lowered or "authorization" in lowered):
            spans += self._auth_values(text)
        if _KEY_WORD_HINT.search(lowered):
            spans += self._cued_values(text, lowered if len(lowered) == len(text) else None, spans)
        if longest >= 20 and any(len(w) >= 20 and not (w.islower() or w.isupper()) for w in words):
            spans += self._random_tokens(text)
        return resolve_overlaps(spans) if len(spans) > 1 else spans

    @staticmethod
    def _prefixed(text: str) -> list[Span]:
        """Vendor keys, matched where a prefix hint starts (a fast trie scan) rather than by
        scanning the whole text with the vendor pattern."""
        spans = []
        end = 0
        for hint in _VENDOR_HINT.finditer(text):
            if hint.start() < end:
                continue
            match = _PREFIXED.match(text, hint.start())
            if match is not None and _plausible_tail(match.group()):
                spans.append(
                    Span(match.start(), match.end(), SECRET, PRIORITY[SECRET], match.group())
                )
                end = match.end()
        return spans

    @staticmethod
    def _auth_values(text: str) -> list[Span]:
        spans = []
        for match in _AUTH_SCHEME.finditer(text):
            value = match.group("value").rstrip(".")  # a sentence's full stop
            if _looks_random(value, min_length=16, min_entropy=2.5):
                spans.append(_span(match, PRIORITY[SECRET], value))
        return spans

    @staticmethod
    def _cued_values(text: str, lowered: str | None, found: list[Span]) -> list[Span]:
        """Values after key words; `lowered` is text.lower() when it keeps the offsets.
        A value that starts inside a key already ``found`` (by its prefix) is not rechecked."""
        starts = {span.start for span in found}
        spans = []
        if lowered is None or _ASSIGNED_HINT.search(lowered):
            for match in _ASSIGNED.finditer(text):
                value = match.group("value").rstrip(".")
                password = _PASSWORD_KEY.search(match.group("key")) is not None
                if len(value) >= 6 and _secret_after_cue(value, password, assigned=True):
                    spans.append(_span(match, GENERIC_SECRET_PRIORITY, value))
        phrases = (
            _PHRASE.finditer(lowered) if lowered is not None else _PHRASE_ANY_CASE.finditer(text)
        )
        for match in phrases:
            password = match.group("password") is not None
            # A password may end in "!" or "?" ("Lagos#2019!"); a key ends a sentence there.
            start = match.start("value")
            if start in starts:
                continue
            value = text[start : match.end("value")].rstrip(".," if password else ".,!?")
            assigned = any(c in match.group("filler") for c in ":=")
            if value and _secret_after_cue(value, password, assigned):
                spans.append(
                    Span(start, start + len(value), SECRET, GENERIC_SECRET_PRIORITY, value)
                )
        return spans

    @staticmethod
    def _random_tokens(text: str) -> list[Span]:
        spans = []
        for match in _LONG_TOKEN.finditer(text):
            token = match.group()
            if "/" in token and token.count("/") >= 2 and not random_token(token.replace("/", "")):
                continue
            if _HASH_CUE.search(text[max(0, match.start() - 16) : match.start()]):
                continue
            if re.match(r"(?i)(?:sha\d+|md5)[-:]", token) or not random_token(token):
                continue
            spans.append(Span(match.start(), match.end(), SECRET, GENERIC_SECRET_PRIORITY, token))
        return spans


def _plausible_tail(secret: str) -> bool:
    """A vendor prefix plus a tail that is not a plain word ("sk-learn-compatible")."""
    tail = re.sub(r"^[A-Za-z0-9]+[-_.](?:[a-z0-9]+[-_])?", "", secret)
    return any(c.isdigit() for c in tail) or (
        any(c.isupper() for c in tail) and any(c.islower() for c in tail)
    )


def _span(match: re.Match[str], priority: int, value: str | None = None) -> Span:
    start = match.start("value")
    found = match.group("value") if value is None else value
    return Span(start, start + len(found), SECRET, priority, found)
