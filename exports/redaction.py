"""Redaction of narratives and event payloads before they are stored in a bundle (docs/exports.md, "Redaction").

Pure Python, no Django. Apply it to the inputs of the narrative renderer (event payloads with
:meth:`Redactor.redact_json`, titles and bodies with :meth:`Redactor.redact`) before rendering, so the digest
that approvers sign covers the redacted text that ships. Redacting already-rendered Markdown works too, but the
renderer's backslash escapes (``sk\\_live\\_...``) can hide a token from the detectors.

Detectors (type name → what it finds)
    ``EMAIL``           addresses ``local@domain.tld``
    ``PHONE``           ``+`` international numbers (8-15 digits) and North American ``(555) 123-4567``,
                        ``555-123-4567``, ``555.123.4567``, ``555 123 4567``; bare digit runs are not phones
    ``SSN``             US social security numbers written ``123-45-6789`` (invalid areas 000/666/9xx skipped)
    ``CARD``            13-19 digits, optionally grouped by spaces or dashes, starting 2-6, Luhn-valid only
    ``IPV4``            dotted quads with octets 0-255
    ``URL``             ``http(s)``, ``ftp``, ``sftp``, ``ws(s)`` URLs
    ``JWT``             three base64url segments starting ``eyJ``
    ``PRIVATE_KEY``     PEM ``-----BEGIN ... PRIVATE KEY-----`` blocks through their END line
    ``AWS_ACCESS_KEY``  AWS access key ids (``AKIA``/``ASIA``/``ABIA``/``ACCA`` + 16)
    ``API_KEY``         ``sk_live_``/``pk_test_``/``rk_live_``-style (Stripe) keys, GitHub ``ghp_``/``gho_``/``ghs_``/
                        ``ghu_``/``ghr_`` and ``github_pat_`` tokens, Slack ``xox?-`` tokens and ``hooks.slack.com``
                        webhook paths, GitLab ``glpat-``, Google ``AIza`` keys and ``ya29.`` OAuth tokens
    ``ANTHROPIC_KEY``   Anthropic ``sk-ant-…`` keys
    ``OPENAI_KEY``      OpenAI ``sk-…``, ``sk-proj-…``, ``sk-svcacct-…`` and ``sk-admin-…`` keys
    ``AWS_SECRET_KEY``  the 40-character value of ``aws_secret_access_key = …`` style assignments (env files, INI,
                        YAML, JSON ``"aws_secret_access_key": "…"``); the key name is kept
    ``AZURE_CONNECTION_STRING``  Azure storage connection strings (``DefaultEndpointsProtocol=…;AccountKey=…``) and
                        bare ``AccountKey=``/``SharedAccessSignature=`` values
    ``SECRET``          the value of any ``…key|secret|token|password = value`` assignment (also JSON and
                        YAML) when the value looks generated: at least 16 characters, letters and digits, Shannon
                        entropy >= 3.5 bits per character (passwords: at least 8 characters of two classes); the
                        name is kept

Strategies
    ``label``    ``[REDACTED:EMAIL]``
    ``mask``     one ``*`` per character of the match (line breaks included)
    ``partial``  keeps what identifies without exposing:
                 EMAIL → ``***@domain``; PHONE, CARD → every digit but the last 4 becomes ``*``, separators kept;
                 SSN → ``***-**-6789``; IPV4 → first two octets, ``10.1.*.*``; URL → ``[REDACTED:URL:host]``;
                 AWS_ACCESS_KEY and API_KEY → the public prefix (``AKIA``, ``ghp_``, ``sk_live_``) then ``*``;
                 JWT, PRIVATE_KEY → same as ``label``; custom rules → last 4 characters kept when the match is at
                 least 8 long, otherwise fully masked.

Allow-list: spans matching an identifier the dossier needs (sha256/sha512 hex digests, UUIDs, ISO 8601
timestamps and dates, DOIs as ``doi:10.x/...``, bare ``10.x/...`` or doi.org URLs, PMID/PMCID/arXiv citations,
``export 12`` / ``execution #12`` style ids, earlier redaction labels) are kept. A detection entirely inside an
allowed span is dropped; one that merely overlaps it is still redacted, since privacy wins a tie.

Overlaps between detections resolve deterministically: the longest match wins, then the type listed first in
``BUILTIN_TYPES`` (custom rules after built-ins, in file order), then the leftmost.

Idempotence: redacting the output again changes nothing and counts nothing. Replacing a match can expose a
neighbour that a boundary rule hid (in ``...4567(555) 123-4567`` the second number only becomes a phone once the
first is replaced), so :meth:`Redactor.redact` repeats passes until one finds nothing and counts every pass. Real
text settles in two passes; only chains of more than ``MAX_PASSES`` glued detections can stay partly unredacted.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

MAX_PASSES = 64
ALLOW_WINDOW = 256


class Strategy(StrEnum):
    LABEL = "label"
    MASK = "mask"
    PARTIAL = "partial"


class RedactionRuleError(ValueError):
    """A custom rule file is unreadable or a rule in it is invalid; the message names the rule."""


@dataclass(frozen=True, slots=True)
class RedactionResult:
    text: str
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class JsonRedactionResult:
    data: Any
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# --------------------------------------------------------------------------------------------------------------
# Detectors


@dataclass(frozen=True, slots=True)
class Match:
    start: int
    end: int
    type: str
    rank: int
    prefix_end: int = 0  # for API keys: end of the public prefix that `partial` keeps


Finder = Callable[[str], Iterator[tuple[int, int, int]]]  # yields (start, end, prefix_end)


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _regex_finder(pattern: re.Pattern[str], accept: Callable[[str], bool] | None = None) -> Finder:
    def find(text: str) -> Iterator[tuple[int, int, int]]:
        for found in pattern.finditer(text):
            if found.end() > found.start() and (accept is None or accept(found.group())):
                prefix_end = found.end("prefix") if "prefix" in pattern.groupindex else found.start()
                yield found.start(), found.end(), prefix_end

    return find


_EMAIL_DOMAIN = re.compile(r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![A-Za-z0-9-])")
_EMAIL_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


def _find_emails(text: str) -> Iterator[tuple[int, int, int]]:
    # Anchored on "@" and grown leftwards: a regex starting with the local-part class would retry at every
    # character of every word, which makes megabyte narratives crawl.
    if "@" not in text:
        return
    for found in _EMAIL_DOMAIN.finditer(text):
        start = found.start()
        while start > 0 and start > found.start() - 64 and text[start - 1] in _EMAIL_LOCAL_CHARS:
            start -= 1
        while start < found.start() and text[start] == ".":
            start += 1
        if start < found.start():
            yield start, found.end(), start


# Patterns open with the character they need (digit, literal prefix) and only then look behind: a leading
# lookbehind stops the regex engine from skipping ahead to plausible starts, which made scans several times slower.
_PHONE = re.compile(
    r"[+(\d](?<![\w+.\-/][+(\d])"
    r"(?:(?<=\+)[1-9]\d{0,2}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){1,4}"
    r"|(?<=\()\d{3}\)[ ]?\d{3}[ .\-]\d{4}"
    r"|(?<=\d)\d{2}[ .\-]\d{3}[ .\-]\d{4})"
    r"(?![\w\-]|[.]\d)"
)
_SSN = re.compile(r"\d(?<![\w\-]\d)\d\d-\d\d-\d{4}(?![\w\-])")
_CARD = re.compile(r"[2-6](?<![\w.\-][2-6])(?:[ \-]?\d){12,18}(?![\w\-]|[.]\d)")
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?![\w]|\.\d)")
_URL = re.compile(r"(?<![\w@])(?:https?|s?ftp|wss?)://[^\s<>\"'`]+", re.IGNORECASE)
_JWT = re.compile(r"eyJ(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----", re.DOTALL
)
_AWS_ACCESS_KEY = re.compile(r"(?P<prefix>AKIA|ASIA|ABIA|ACCA)(?<![A-Za-z0-9]....)[A-Z0-9]{16}(?![A-Za-z0-9])")
_API_KEY = re.compile(
    r"(?P<prefix>(?:sk|pk|rk)_(?:live|test)_|gh[pousr]_|github_pat_|glpat-|xox[abprse]-|AIza|ya29\.)"
    r"[A-Za-z0-9_\-]{16,}"
    r"|(?P<webhook>hooks\.slack\.com/(?:services|workflows)/)[A-Za-z0-9_/\-]{20,}"
)
_ANTHROPIC_KEY = re.compile(r"(?P<prefix>sk-ant-)[A-Za-z0-9_\-]{20,}")
_OPENAI_KEY = re.compile(r"(?P<prefix>sk-(?:proj-|svcacct-|admin-)?)(?!ant-)[A-Za-z0-9_\-]{20,}")
_ASSIGNMENT = r"""\\?["']?[ \t]*(?::|=|:=|=>)[ \t]*\\?["']?"""  # quotes may be escaped (JSON inside a string)
_AWS_SECRET_KEY = re.compile(
    r"(?i:aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key)" + _ASSIGNMENT
    + r"(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)  # fmt: skip
_AZURE = re.compile(
    r"DefaultEndpointsProtocol=[A-Za-z]+(?:;[A-Za-z]+=[^\s;\"'<>]*)+"
    r"|(?P<prefix>AccountKey=|SharedAccessSignature=)[A-Za-z0-9+/%&=.\-]{20,}"
)
_SECRET_ASSIGNMENT = re.compile(
    r"(?i:(?P<name>key|secret|token|passw(?:or)?d|pwd|passphrase|credentials?))(?![A-Za-z0-9])"
    + _ASSIGNMENT
    + r"(?P<value>[^\s\"',;}\])\\]{8,200})"
)


_API_KEY_PREFIX_BOUNDARY = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _digits_between(low: int, high: int) -> Callable[[str], bool]:
    def accept(text: str) -> bool:
        return low <= sum(char.isdigit() for char in text) <= high

    return accept


def _card_accept(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and _luhn_valid(digits)


def _ssn_accept(text: str) -> bool:
    area, group, serial = text.split("-")
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _ipv4_accept(text: str) -> bool:
    return all(int(octet) <= 255 and (octet == "0" or not octet.startswith("0")) for octet in text.split("."))


def _with_substring(needles: tuple[str, ...], finder: Finder) -> Finder:
    # str.find runs at memory speed; most texts hold none of a secret type's fixed markers, so skip the regex.
    def find(text: str) -> Iterator[tuple[int, int, int]]:
        if any(needle in text for needle in needles):
            yield from finder(text)

    return find


def _find_api_keys(text: str) -> Iterator[tuple[int, int, int]]:
    for found in _API_KEY.finditer(text):
        start = found.start()
        if found.group("webhook"):
            yield start, found.end(), found.end("webhook")
        elif start == 0 or text[start - 1] not in _API_KEY_PREFIX_BOUNDARY:
            yield start, found.end(), found.end("prefix")


def _find_azure(text: str) -> Iterator[tuple[int, int, int]]:
    for found in _AZURE.finditer(text):
        whole = found.group()
        if found.group("prefix") or "AccountKey=" in whole or "SharedAccessSignature=" in whole:
            yield found.start(), found.end(), found.end("prefix") if found.group("prefix") else found.start()


def _find_aws_secret_keys(text: str) -> Iterator[tuple[int, int, int]]:
    for found in _AWS_SECRET_KEY.finditer(text):
        yield found.start("value"), found.end("value"), found.start("value")


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(count / len(value) * math.log2(count / len(value)) for count in counts.values())


def _classes(value: str) -> int:
    return (
        any(char.islower() for char in value)
        + any(char.isupper() for char in value)
        + any(char.isdigit() for char in value)
        + any(not char.isalnum() for char in value)
    )


def looks_generated(value: str, *, password: bool = False) -> bool:
    """Whether an assigned value looks like a credential rather than a word, a number or a placeholder."""
    if password:
        return len(value) >= 8 and _classes(value) >= 2 and _entropy(value) >= 2.5
    has_letter = any(char.isalpha() for char in value)
    return len(value) >= 16 and has_letter and any(c.isdigit() for c in value) and _entropy(value) >= 3.5


def _find_secret_assignments(text: str) -> Iterator[tuple[int, int, int]]:
    for found in _SECRET_ASSIGNMENT.finditer(text):
        password = found.group("name").lower().startswith(("pass", "pwd"))
        if looks_generated(found.group("value"), password=password):
            yield found.start("value"), found.end("value"), found.start("value")


def _bounded(pattern: re.Pattern[str]) -> Finder:
    """A prefixed-token finder that ignores matches glued to a preceding word (``task-…`` is not ``sk-…``)."""

    def find(text: str) -> Iterator[tuple[int, int, int]]:
        for start, end, prefix_end in _regex_finder(pattern)(text):
            if start == 0 or text[start - 1] not in _API_KEY_PREFIX_BOUNDARY:
                yield start, end, prefix_end

    return find


_URL_TRAILING = ".,;:!?'\\"


def _find_urls(text: str) -> Iterator[tuple[int, int, int]]:
    if "://" not in text:
        return
    for found in _URL.finditer(text):
        url = found.group().rstrip(_URL_TRAILING)
        # A closing parenthesis usually belongs to the prose around the URL, unless the URL opened one.
        while url.endswith(")") and url.count("(") < url.count(")"):
            url = url[:-1].rstrip(_URL_TRAILING)
        if "://" in url and not url.endswith("://"):
            yield found.start(), found.start() + len(url), found.start()


_URL_HOST = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^@/?#\s]*@)?([A-Za-z0-9.\-]+)")


# Order is the tie-break priority after length: the more specific secret wins.
BUILTIN_DETECTORS: tuple[tuple[str, Finder], ...] = (
    ("PRIVATE_KEY", _with_substring(("PRIVATE KEY-----",), _regex_finder(_PRIVATE_KEY))),
    ("JWT", _with_substring(("eyJ",), _regex_finder(_JWT))),
    ("AWS_ACCESS_KEY", _with_substring(("AKIA", "ASIA", "ABIA", "ACCA"), _regex_finder(_AWS_ACCESS_KEY))),
    ("ANTHROPIC_KEY", _with_substring(("sk-ant-",), _bounded(_ANTHROPIC_KEY))),
    ("OPENAI_KEY", _with_substring(("sk-",), _bounded(_OPENAI_KEY))),
    ("AZURE_CONNECTION_STRING", _with_substring(("AccountKey=", "SharedAccessSignature="), _find_azure)),
    ("AWS_SECRET_KEY", _find_aws_secret_keys),
    (
        "API_KEY",
        _with_substring(("_live_", "_test_", "gh", "glpat-", "xox", "AIza", "ya29.", "hooks.slack"), _find_api_keys),
    ),
    ("SECRET", _find_secret_assignments),
    ("CARD", _regex_finder(_CARD, _card_accept)),
    ("SSN", _with_substring(("-",), _regex_finder(_SSN, _ssn_accept))),
    ("EMAIL", _find_emails),
    ("URL", _find_urls),
    ("PHONE", _regex_finder(_PHONE, _digits_between(7, 15))),
    ("IPV4", _with_substring((".",), _regex_finder(_IPV4, _ipv4_accept))),
)
BUILTIN_TYPES: tuple[str, ...] = tuple(name for name, _ in BUILTIN_DETECTORS)


# --------------------------------------------------------------------------------------------------------------
# Allow-list

_LABEL = r"\[REDACTED:[A-Z][A-Z0-9_]*(?::[A-Za-z0-9.\-]*)?\]"
# As with the detectors, every alternative consumes its first character before looking behind, so the engine can
# skip straight to plausible starts.
_HEX = "[0-9A-Fa-f]"
_ALLOWED = (
    _LABEL,
    rf"{_HEX}(?<!{_HEX}{_HEX})(?:{_HEX}{{127}}|{_HEX}{{63}})(?!{_HEX})",
    rf"{_HEX}(?<!{_HEX}{_HEX}){_HEX}{{7}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}(?!{_HEX})",
    r"\d(?<!\d\d)\d{3}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+\-]\d{2}(?::?\d{2})?)?)?(?!\d)",
    r"[dD](?<![\w][dD])[oO][iI]:\s?10\.\d{4,9}/[^\s\"<>]+",
    r"[hH](?<![\w][hH])(?i:ttps?://(?:dx\.)?doi\.org/)10\.\d{4,9}/[^\s\"<>]+",
    r"1(?<![\w/.]1)0\.\d{4,9}/[^\s\"<>]+",
    r"[pPaA](?<![\w][pPaA])(?i:(?<=p)mcid|(?<=p)mid|(?<=a)rxiv):\s?[A-Za-z0-9./\-]+",
    r"[eE](?<![\w][eE])(?i:xport|xecution)s?[ _\-]?(?:[iI][dD])?[ #:=]{0,3}\d+\b",
)
_LABEL_PATTERN = re.compile(_LABEL)


def _compile_allowed(extra: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{pattern})" for pattern in (*_ALLOWED, *extra)))


# --------------------------------------------------------------------------------------------------------------
# Custom rules

_RULE_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_RULE_KEYS = frozenset({"name", "pattern", "strategy"})


@dataclass(frozen=True, slots=True)
class CustomRule:
    name: str
    pattern: re.Pattern[str]
    strategy: Strategy


def _rule_error(where: str, message: str) -> RedactionRuleError:
    return RedactionRuleError(f"{where}: {message}")


_TYPED_RULE_KEYS = frozenset({"name", "pattern", "type"})
_TYPED_RULE_OPTIONAL = frozenset({"description", "strategy"})
_TYPED_DOCUMENT_KEYS = frozenset({"rules", "strategies", "default_strategy"})
_RULE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")
LABEL_TEMPLATE = "[REDACTED:{type}]"


def parse_custom_rules(document: Any, *, source: str = "rules") -> tuple[CustomRule, ...]:
    """Validate a custom rule document and compile it. Two forms are accepted:

    - ``{"rules": [{"name", "pattern", "strategy"}, ...]}``: ``name`` is the upper-case type (the label);
    - ``{"rules": [{"name", "pattern", "type", "description"?, "strategy"?}, ...], "strategies": {...}?,
      "default_strategy": "label"?}``: ``type`` becomes the label (upper-cased: ``custom_id`` → ``CUSTOM_ID``),
      ``name`` identifies the rule, ``strategy`` defaults to ``default_strategy`` (``label``); ``strategies`` may
      configure ``label`` with ``{"replacement": "[REDACTED:{type}]"}`` — the only replacement the engine can
      recognise again, which keeps redaction idempotent — and name ``mask`` or ``partial`` without options.

    Types are upper-case identifiers distinct from the built-in types; patterns must compile and must match
    neither the empty string nor a run of ``*`` (mask output), else redaction could never settle.
    """
    if not isinstance(document, dict) or "rules" not in document or not isinstance(document["rules"], list):
        raise _rule_error(source, 'expected an object {"rules": [...]}')
    typed = set(document) != {"rules"} or any(isinstance(raw, dict) and "type" in raw for raw in document["rules"])
    if not typed:
        rules: list[CustomRule] = []
        for index, raw in enumerate(document["rules"]):
            rules.append(_parse_rule(raw, f"{source}: rules[{index}]", {rule.name for rule in rules}))
        return tuple(rules)
    return _parse_typed_rules(document, source)


def _parse_typed_rules(document: dict, source: str) -> tuple[CustomRule, ...]:
    unknown = sorted(set(document) - _TYPED_DOCUMENT_KEYS)
    if unknown:
        raise _rule_error(source, f"unknown keys {unknown}")
    default = document.get("default_strategy", "label")
    if default not in set(Strategy):
        raise _rule_error(source, f"default_strategy {default!r} must be one of {', '.join(Strategy)}")
    _check_typed_strategies(document.get("strategies", {}), source)
    rules: list[CustomRule] = []
    names: set[str] = set()
    strategy_of_type: dict[str, Strategy] = {}
    for index, raw in enumerate(document["rules"]):
        where = f"{source}: rules[{index}]"
        _, label = _typed_rule_names(raw, where, names)
        strategy = raw.get("strategy", default)
        if strategy_of_type.setdefault(label, strategy) != strategy:
            raise _rule_error(where, f"type {label!r} is given two strategies")
        rule = _parse_rule(
            {"name": label, "pattern": raw["pattern"], "strategy": strategy},
            where,
            {rule.name for rule in rules if rule.name != label},
        )
        rules.append(rule)
    return tuple(rules)


def _check_typed_strategies(strategies: object, source: str) -> None:
    """The typed format's ``strategies`` object: known strategies, and only the label's own replacement."""
    if not isinstance(strategies, dict):
        raise _rule_error(source, "strategies must be an object")
    for name, options in strategies.items():
        where = f"{source}: strategies.{name}"
        if name not in set(Strategy):
            raise _rule_error(where, f"unknown strategy (use {', '.join(Strategy)})")
        if not isinstance(options, dict):
            raise _rule_error(where, "expected an object")
        allowed = {"replacement"} if name == Strategy.LABEL else set()
        if set(options) - allowed:
            raise _rule_error(where, f"unknown options {sorted(set(options) - allowed)}")
        if "replacement" in options and options["replacement"] != LABEL_TEMPLATE:
            raise _rule_error(where, f"replacement must be {LABEL_TEMPLATE!r}, the label the engine recognises")


def _typed_rule_names(raw: object, where: str, names: set[str]) -> tuple[str, str]:
    """A typed rule's keys checked; its distinct name (added to ``names``) and its type as a label."""
    if not isinstance(raw, dict):
        raise _rule_error(where, "expected an object with name, pattern and type")
    missing = sorted(_TYPED_RULE_KEYS - set(raw))
    unknown = sorted(set(raw) - _TYPED_RULE_KEYS - _TYPED_RULE_OPTIONAL)
    if missing or unknown:
        raise _rule_error(where, f"missing keys {missing}, unknown keys {unknown}")
    name, kind = raw["name"], raw["type"]
    if not isinstance(name, str) or _RULE_ID.fullmatch(name) is None or name in names:
        raise _rule_error(where, f"name {name!r} must be a distinct identifier (letters, digits, _ and -)")
    names.add(name)
    if not isinstance(raw.get("description", ""), str):
        raise _rule_error(where, "description must be a string")
    return name, kind.upper() if isinstance(kind, str) else kind


def _parse_rule(raw: Any, where: str, taken: set[str]) -> CustomRule:
    if not isinstance(raw, dict):
        raise _rule_error(where, "expected an object with name, pattern and strategy")
    if set(raw) != _RULE_KEYS:
        missing, unknown = sorted(_RULE_KEYS - set(raw)), sorted(set(raw) - _RULE_KEYS)
        raise _rule_error(where, f"missing keys {missing}, unknown keys {unknown}")
    name, pattern, strategy = raw["name"], raw["pattern"], raw["strategy"]
    if not isinstance(name, str) or _RULE_NAME.fullmatch(name) is None:
        raise _rule_error(where, f"name {name!r} must be upper-case letters, digits and _, at most 32, letter first")
    if name in BUILTIN_TYPES or name in taken:
        raise _rule_error(where, f"name {name!r} is already used")
    if strategy not in set(Strategy):
        raise _rule_error(where, f"strategy {strategy!r} must be one of {', '.join(Strategy)}")
    if not isinstance(pattern, str) or not pattern:
        raise _rule_error(where, "pattern must be a non-empty string")
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise _rule_error(where, f"pattern does not compile: {error}") from error
    if compiled.fullmatch("") is not None:
        raise _rule_error(where, "pattern matches the empty string")
    # Labels are shielded by the engine; masks are not, and a rule eating its own mask would never settle.
    if compiled.search("*" * 16) is not None:
        raise _rule_error(where, "pattern matches redaction output (runs of *)")
    return CustomRule(name, compiled, Strategy(strategy))


def load_custom_rules(path: str | Path) -> tuple[CustomRule, ...]:
    """Read and validate a custom rule file; every problem raises :class:`RedactionRuleError`."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise _rule_error(str(path), f"cannot read: {error.strerror or error}") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _rule_error(str(path), f"not valid UTF-8 JSON: {error}") from error
    return parse_custom_rules(document, source=str(path))


# --------------------------------------------------------------------------------------------------------------
# Replacement


def _mask_digits_but_last4(text: str) -> str:
    remaining = sum(char.isdigit() for char in text) - 4
    out = []
    for char in text:
        if char.isdigit() and remaining > 0:
            out.append("*")
            remaining -= 1
        else:
            out.append(char)
    return "".join(out)


def _partial(kind: str, text: str, match: Match) -> str:
    if kind == "EMAIL":
        return "***@" + text.rpartition("@")[2]
    if kind in ("PHONE", "CARD"):
        return _mask_digits_but_last4(text)
    if kind == "SSN":
        return "***-**-" + text[-4:]
    if kind == "IPV4":
        first, second, *_ = text.split(".")
        return f"{first}.{second}.*.*"
    if kind == "URL":
        host = _URL_HOST.match(text)
        return f"[REDACTED:URL:{host.group(1)}]" if host else "[REDACTED:URL]"
    if kind in ("AWS_ACCESS_KEY", "API_KEY", "ANTHROPIC_KEY", "OPENAI_KEY"):
        keep = match.prefix_end - match.start
        return text[:keep] + "*" * (len(text) - keep)
    if kind in BUILTIN_TYPES:
        return f"[REDACTED:{kind}]"
    return "*" * (len(text) - 4) + text[-4:] if len(text) >= 8 else "*" * len(text)


def _replacement(strategy: Strategy, text: str, match: Match) -> str:
    if strategy is Strategy.LABEL:
        return f"[REDACTED:{match.type}]"
    if strategy is Strategy.MASK:
        return "*" * len(text)
    return _partial(match.type, text, match)


# --------------------------------------------------------------------------------------------------------------
# Engine


@dataclass(frozen=True)
class Redactor:
    """A configured redaction engine; immutable, so one instance can serve every export.

    ``strategy`` applies to every built-in type unless ``overrides`` names another for that type; custom rules
    carry their own strategy. ``allow_patterns`` adds regexes to the allow-list. ``enabled=False`` (a template
    whose redaction a compliance officer switched off) returns every text unchanged and counts nothing.
    """

    strategy: Strategy = Strategy.LABEL
    overrides: Mapping[str, Strategy] = field(default_factory=dict)
    custom_rules: Sequence[CustomRule] = ()
    allow_patterns: Sequence[str] = ()
    enabled: bool = True
    _detectors: tuple[tuple[str, Finder, Strategy], ...] = field(init=False, repr=False, compare=False)
    _allowed: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.overrides) - set(BUILTIN_TYPES))
        if unknown:
            raise ValueError(f"overrides name unknown types {unknown}")
        default = Strategy(self.strategy)
        detectors = [(name, finder, Strategy(self.overrides.get(name, default))) for name, finder in BUILTIN_DETECTORS]
        detectors += [(rule.name, _regex_finder(rule.pattern), rule.strategy) for rule in self.custom_rules]
        object.__setattr__(self, "_detectors", tuple(detectors))
        object.__setattr__(self, "_allowed", _compile_allowed(self.allow_patterns))

    def redact(self, text: str) -> RedactionResult:
        counts: Counter[str] = Counter()
        if not self.enabled:
            return RedactionResult(text, {})
        for _ in range(MAX_PASSES):
            matches = self._select(text)
            if not matches:
                break
            counts.update(match.type for match in matches)
            text = self._apply(text, matches)
        return RedactionResult(text, dict(sorted(counts.items())))

    def redact_json(self, data: Any) -> JsonRedactionResult:
        """Redact every string value of a JSON document, recursively; keys, numbers and structure are kept."""
        counts: Counter[str] = Counter()
        if not self.enabled:
            return JsonRedactionResult(data, {})

        def walk(value: Any) -> Any:
            if isinstance(value, str):
                result = self.redact(value)
                counts.update(result.counts)
                return result.text
            if isinstance(value, dict):
                return {key: walk(item) for key, item in value.items()}
            if isinstance(value, list | tuple):
                return [walk(item) for item in value]
            return value

        redacted = walk(data)
        return JsonRedactionResult(redacted, dict(sorted(counts.items())))

    def _candidates(self, text: str) -> list[Match]:
        found = []
        for rank, (name, finder, _strategy) in enumerate(self._detectors):
            found += [Match(start, end, name, rank, prefix_end) for start, end, prefix_end in finder(text)]
        return found

    def _select(self, text: str) -> list[Match]:
        candidates = self._candidates(text)
        if not candidates:
            return []
        allowed = _Spans(self._allowed_near(text, candidates))
        labels = _Spans((found.start(), found.end()) for found in _LABEL_PATTERN.finditer(text))
        chosen: list[Match] = []
        starts: list[int] = []
        for match in sorted(candidates, key=lambda m: (m.start - m.end, m.rank, m.start)):
            if allowed.contains(match.start, match.end) or labels.overlaps(match.start, match.end):
                continue
            position = bisect_left(starts, match.start)
            clash_left = position > 0 and chosen[position - 1].end > match.start
            clash_right = position < len(chosen) and chosen[position].start < match.end
            if not clash_left and not clash_right:
                chosen.insert(position, match)
                starts.insert(position, match.start)
        return chosen

    def _allowed_near(self, text: str, candidates: list[Match]) -> Iterator[tuple[int, int]]:
        """Allow-listed spans within ALLOW_WINDOW characters of a candidate, in order.

        Scanning only near candidates keeps large texts fast: most of a narrative has nothing to redact. A span
        touching a window's end may be cut short (the regex sees the window end as the text end), so it is
        dropped; identifiers longer than the window are therefore not protected, which errs towards redacting.
        """
        windows: list[list[int]] = []
        for match in sorted(candidates, key=lambda m: m.start):
            low, high = max(0, match.start - ALLOW_WINDOW), min(len(text), match.end + ALLOW_WINDOW)
            if windows and low <= windows[-1][1]:
                windows[-1][1] = max(windows[-1][1], high)
            else:
                windows.append([low, high])
        for low, high in windows:
            for found in self._allowed.finditer(text, low, high):
                if found.end() < high or high == len(text):
                    yield found.start(), found.end()

    def _apply(self, text: str, matches: list[Match]) -> str:
        strategies = {name: strategy for name, _finder, strategy in self._detectors}
        pieces, cursor = [], 0
        for match in matches:
            original = text[match.start : match.end]
            pieces += [text[cursor : match.start], _replacement(strategies[match.type], original, match)]
            cursor = match.end
        pieces.append(text[cursor:])
        return "".join(pieces)


class _Spans:
    """Sorted, non-overlapping spans (as one regex's finditer yields them) with logarithmic lookups."""

    def __init__(self, spans: Iterable[tuple[int, int]]) -> None:
        spans = list(spans)
        self._starts = [start for start, _ in spans]
        self._ends = [end for _, end in spans]

    def _last_starting_before(self, position: int) -> int:
        return bisect_left(self._starts, position + 1) - 1

    def contains(self, start: int, end: int) -> bool:
        index = self._last_starting_before(start)
        return index >= 0 and self._ends[index] >= end

    def overlaps(self, start: int, end: int) -> bool:
        index = self._last_starting_before(end - 1)
        return index >= 0 and self._ends[index] > start
