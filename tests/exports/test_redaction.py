import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exports.redaction import (
    BUILTIN_TYPES,
    RedactionRuleError,
    Redactor,
    Strategy,
    load_custom_rules,
    parse_custom_rules,
)

SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
UUID = "123e4567-e89b-12d3-a456-426614174000"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
    "-----END RSA PRIVATE KEY-----"
)

LABEL = Redactor()

POSITIVES = [
    ("EMAIL", "mail ada.lovelace+lab@example.co.uk now", "mail [REDACTED:EMAIL] now"),
    ("PHONE", "call (555) 123-4567 today", "call [REDACTED:PHONE] today"),
    ("PHONE", "call 555-123-4567.", "call [REDACTED:PHONE]."),
    ("PHONE", "intl +44 20 7946 0958 ok", "intl [REDACTED:PHONE] ok"),
    ("SSN", "ssn 123-45-6789 on file", "ssn [REDACTED:SSN] on file"),
    ("CARD", "card 4111 1111 1111 1111 exp", "card [REDACTED:CARD] exp"),
    ("CARD", "card 5500-0000-0000-0004", "card [REDACTED:CARD]"),
    ("IPV4", "host 192.168.10.254 up", "host [REDACTED:IPV4] up"),
    ("URL", "see https://intranet.lab/x?y=1).", "see [REDACTED:URL])."),
    ("JWT", f"token {JWT} end", "token [REDACTED:JWT] end"),
    ("PRIVATE_KEY", f"key:\n{PEM}\nafter", "key:\n[REDACTED:PRIVATE_KEY]\nafter"),
    ("AWS_ACCESS_KEY", "aws AKIAIOSFODNN7EXAMPLE x", "aws [REDACTED:AWS_ACCESS_KEY] x"),
    ("API_KEY", "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe [REDACTED:API_KEY]"),
    ("API_KEY", "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [REDACTED:API_KEY]"),
]


@pytest.mark.parametrize(("kind", "text", "expected"), POSITIVES)
def test_each_detector_labels_its_type(kind, text, expected):
    result = LABEL.redact(text)
    assert result.text == expected
    assert result.counts == {kind: 1}


NEGATIVES = [
    "card 4111 1111 1111 1112 fails Luhn",
    "order 1234567890123456789012 is a long id",
    f"digest {SHA256}",
    f"sha512 {SHA256}{SHA256}",
    f"uuid {UUID}",
    "at 2024-05-01T09:30:00.123456Z and 2024-05-01",
    "cite doi:10.1000/xyz123 and 10.1038/nphys1170 and https://doi.org/10.1000/abc",
    "arXiv:2101.12345 and PMID: 31452104",
    "export 4111111111111111 and execution #12",
    "version 1.2.3 and 300.1.1.1 and step 12-34",
    "ratio 555-1234 and value 42",
    "sk_live_short ghp_tooShort AKIAshort",
    "ssn-like 000-12-3456 and 666-12-3456",
    "[REDACTED:EMAIL] stays",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_identifiers_and_near_misses_are_kept(text):
    result = LABEL.redact(text)
    assert result.text == text
    assert result.counts == {}


def test_mask_keeps_length():
    result = Redactor(strategy=Strategy.MASK).redact("mail ada@example.org, card 4111111111111111")
    assert result.text == "mail " + "*" * 15 + ", card " + "*" * 16
    assert result.counts == {"CARD": 1, "EMAIL": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ada@example.org", "***@example.org"),
        ("4111-1111-1111-1111", "****-****-****-1111"),
        ("(555) 123-4567", "(***) ***-4567"),
        ("123-45-6789", "***-**-6789"),
        ("10.1.2.3", "10.1.*.*"),
        ("https://intranet.lab/path?q=1", "[REDACTED:URL:intranet.lab]"),
        ("AKIAIOSFODNN7EXAMPLE", "AKIA" + "*" * 16),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_" + "*" * 24),
        (JWT, "[REDACTED:JWT]"),
    ],
)
def test_partial_strategy_per_type(text, expected):
    assert Redactor(strategy=Strategy.PARTIAL).redact(text).text == expected


def test_per_type_override():
    redactor = Redactor(strategy=Strategy.LABEL, overrides={"EMAIL": Strategy.PARTIAL})
    assert redactor.redact("ada@example.org 123-45-6789").text == "***@example.org [REDACTED:SSN]"
    with pytest.raises(ValueError, match="unknown types"):
        Redactor(overrides={"NOPE": Strategy.MASK})


def test_overlaps_resolve_to_longest_match():
    result = LABEL.redact(f"https://api.lab/cb?token={JWT}&mail=ada@example.org")
    assert result.text == "[REDACTED:URL]"
    assert result.counts == {"URL": 1}


def test_allow_list_does_not_shield_a_larger_secret():
    assert LABEL.redact("https://evil.example/?q=10.1000/abc").text == "[REDACTED:URL]"


def test_extra_allow_patterns():
    redactor = Redactor(allow_patterns=[r"ops@dossier\.test"])
    assert redactor.redact("ops@dossier.test and ada@example.org").text == "ops@dossier.test and [REDACTED:EMAIL]"


def test_redact_json_recurses_into_strings_only():
    payload = {"ada@example.org": {"list": ["call 555-123-4567", 4111111111111111, None]}, "n": 1.5}
    result = LABEL.redact_json(payload)
    assert result.data == {"ada@example.org": {"list": ["call [REDACTED:PHONE]", 4111111111111111, None]}, "n": 1.5}
    assert result.counts == {"PHONE": 1}
    assert result.total == 1


def test_counts_accumulate_per_type():
    result = LABEL.redact("a@b.org c@d.org 10.0.0.1")
    assert result.counts == {"EMAIL": 2, "IPV4": 1}
    assert list(result.counts) == sorted(result.counts)


# -- idempotence ---------------------------------------------------------------------------------------------------

pieces = st.sampled_from(
    [
        "ada@example.org",
        "4111 1111 1111 1111",
        "4111111111111112",
        "(555) 123-4567",
        "+44 20 7946 0958",
        "123-45-6789",
        "10.0.0.1",
        "https://x.test/a(b)",
        JWT,
        PEM,
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        SHA256,
        UUID,
        "doi:10.1000/xyz",
        "[REDACTED:EMAIL]",
        "*",
        " ",
        "-",
        ".",
        "@",
        "x",
        "7",
        "\n",
    ]
)
texts = st.one_of(st.text(max_size=60), st.lists(st.one_of(pieces, st.text(max_size=4)), max_size=12).map("".join))


def test_replacing_a_match_can_expose_its_neighbour_and_that_is_redacted_too():
    # The digit before each "(" hides the next number until the previous one is replaced.
    result = LABEL.redact("ada@example.org(555) 123-4567(555) 123-4567(555) 123-4567")
    assert result.text == "[REDACTED:EMAIL]" + "[REDACTED:PHONE]" * 3
    assert result.counts == {"EMAIL": 1, "PHONE": 3}


@settings(max_examples=300, deadline=None)
@given(texts, st.sampled_from(list(Strategy)))
def test_redacting_twice_changes_nothing(text, strategy):
    redactor = Redactor(strategy=strategy)
    once = redactor.redact(text)
    twice = redactor.redact(once.text)
    assert twice.text == once.text
    assert twice.counts == {}


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.integers() | texts, lambda inner: st.lists(inner) | st.dictionaries(texts, inner)))
def test_json_redaction_idempotent_and_keeps_keys(data):
    once = LABEL.redact_json(data)
    assert LABEL.redact_json(once.data).data == once.data
    if isinstance(data, dict):
        assert list(once.data) == list(data)


# -- custom rules --------------------------------------------------------------------------------------------------


def test_custom_rules_from_file(tmp_path):
    path = tmp_path / "rules.json"
    rules = [
        {"name": "PATIENT_ID", "pattern": r"\bPT-\d{6}\b", "strategy": "label"},
        {"name": "BADGE", "pattern": r"\bBDG\d{6}\b", "strategy": "partial"},
    ]
    path.write_text(json.dumps({"rules": rules}), encoding="utf-8")
    redactor = Redactor(custom_rules=load_custom_rules(path))
    result = redactor.redact("PT-123456 by BDG987654 at ada@example.org")
    assert result.text == "[REDACTED:PATIENT_ID] by *****7654 at [REDACTED:EMAIL]"
    assert result.counts == {"BADGE": 1, "EMAIL": 1, "PATIENT_ID": 1}
    assert redactor.redact(result.text).text == result.text


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "expected an object"),
        ({"rules": {}}, "expected an object"),
        ({"rules": ["x"]}, r"rules\[0\]: expected an object"),
        ({"rules": [{"name": "A", "pattern": "a"}]}, "missing keys \\['strategy'\\]"),
        ({"rules": [{"name": "A", "pattern": "a", "strategy": "label", "x": 1}]}, "unknown keys \\['x'\\]"),
        ({"rules": [{"name": "lower", "pattern": "a", "strategy": "label"}]}, "upper-case"),
        ({"rules": [{"name": "EMAIL", "pattern": "a", "strategy": "label"}]}, "already used"),
        ({"rules": [{"name": "A", "pattern": "(", "strategy": "label"}]}, "does not compile"),
        ({"rules": [{"name": "A", "pattern": "a*", "strategy": "label"}]}, "empty string"),
        ({"rules": [{"name": "A", "pattern": r"\*+", "strategy": "label"}]}, "redaction output"),
        ({"rules": [{"name": "A", "pattern": "a", "strategy": "shred"}]}, "strategy 'shred'"),
        ({"rules": [{"name": "A", "pattern": 3, "strategy": "label"}]}, "non-empty string"),
    ],
)
def test_invalid_rule_documents_are_refused_with_the_rule_named(document, message):
    with pytest.raises(RedactionRuleError, match=message):
        parse_custom_rules(document)


def test_duplicate_rule_names_refused():
    rule = {"name": "A", "pattern": "a", "strategy": "label"}
    with pytest.raises(RedactionRuleError, match=r"rules\[1\]: name 'A' is already used"):
        parse_custom_rules({"rules": [rule, rule]})


def test_unreadable_or_malformed_rule_files(tmp_path):
    with pytest.raises(RedactionRuleError, match="cannot read"):
        load_custom_rules(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(RedactionRuleError, match=f"{broken}: not valid UTF-8 JSON"):
        load_custom_rules(broken)


def test_builtin_types_are_the_documented_set():
    assert set(BUILTIN_TYPES) == {
        "EMAIL",
        "PHONE",
        "SSN",
        "CARD",
        "IPV4",
        "URL",
        "JWT",
        "PRIVATE_KEY",
        "AWS_ACCESS_KEY",
        "AWS_SECRET_KEY",
        "ANTHROPIC_KEY",
        "OPENAI_KEY",
        "AZURE_CONNECTION_STRING",
        "SECRET",
        "API_KEY",
    }
