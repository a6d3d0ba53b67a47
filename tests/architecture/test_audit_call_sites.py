"""Every audit row goes through ``audit_record`` / ``audit_record_many``, which apply the payload rule
(docs/audit-trail.md, "What a payload holds"): the call sites are listed here, so a new one is seen and its payload
checked, and no module writes ``AuditEvent`` rows any other way."""

from __future__ import annotations

import ast
from collections import Counter

from tests.architecture.sources import app_modules, parsed, relative

AUDIT_SERVICE = "governance/services/audit.py"
CALLS = {"audit_record", "audit_record_many", "AuditEntry"}

# (module, enclosing function, called name): how many calls. What each payload holds beyond ids, codes, numbers,
# timestamps and digests is noted; that text is digested by the rule and kept in full in the named record.
KNOWN_CALL_SITES = {
    ("approvals/services/ladders.py", "stage_decide", "audit_record"): 1,  # integrity refusal: codes, ids
    ("approvals/services/monitor.py", "_check_enforcement", "audit_record"): 1,  # detail -> observation
    ("approvals/services/signing.py", "signer_attempt_record", "audit_record"): 1,  # counts
    ("approvals/services/signing_controls.py", "signer_certify", "audit_record"): 1,  # version, digest
    ("approvals/services/audit_reviews.py", "_review_open", "audit_record"): 1,  # period, reviewer id
    (
        "approvals/services/audit_reviews.py",
        "audit_review_complete",
        "audit_record",
    ): 1,  # meaning, comment -> AuditReview
    ("exports/services/encryption.py", "keyring_rotate", "audit_record"): 1,  # key ids, provider
    ("exports/services/encryption.py", "_each_stored_object", "audit_record"): 1,  # key id, counts
    ("exports/services/evidence.py", "_audit_evidence", "audit_record"): 1,  # title -> Evidence
    ("exports/services/executions.py", "events_append", "audit_record"): 1,  # counts and sequences only
    ("exports/services/executions.py", "execution_create", "audit_record"): 1,  # title -> Execution
    ("exports/services/executions.py", "execution_event_record", "audit_record"): 1,  # body -> ExecutionEvent
    ("exports/services/lifecycle.py", "export_lifecycle_record_many", "AuditEntry"): 1,  # body -> ExecutionEvent
    ("exports/services/lifecycle.py", "export_lifecycle_record_many", "audit_record_many"): 1,
    ("exports/services/lifecycle.py", "execution_steps_record_many", "AuditEntry"): 1,  # body -> ExecutionEvent
    ("exports/services/lifecycle.py", "execution_steps_record_many", "audit_record_many"): 1,
    ("exports/services/holds.py", "_hold_record", "audit_record"): 1,  # reason -> LegalHold (digested here)
    ("exports/services/packaging.py", "exports_sweep_stuck", "audit_record"): 1,  # status, timestamp
    ("exports/services/packaging.py", "export_replay", "audit_record"): 1,  # digests
    ("exports/services/signing_keys.py", "signing_key_active", "audit_record"): 1,  # key id
    ("exports/services/signing_keys.py", "signing_key_rotate", "audit_record"): 1,  # key ids
    ("exports/services/snapshot_backfill.py", "exports_snapshot_backfill", "audit_record"): 1,  # ids, digest
    ("exports/services/verification.py", "verification_record", "audit_record"): 1,  # codes, digest
    ("exports/services/team_data_exports.py", "team_data_export_to_file", "audit_record"): 1,  # digest, counts
    ("exports/services/team_data_exports.py", "team_data_export_request", "audit_record"): 1,  # ids
    ("exports/services/team_data_exports.py", "_finish_done", "audit_record"): 1,  # digest, counts
    ("exports/services/team_data_exports.py", "_finish_failed", "audit_record"): 1,  # error code
    ("exports/services/team_data_exports.py", "team_data_export_download_open", "audit_record"): 1,  # digest
    ("exports/services/team_erasure.py", "team_erase", "audit_record"): 1,  # reason -> digest only, counts
    ("exports/services/team_erasure.py", "_erase_records", "audit_record"): 1,  # reason -> digest only, counts
    ("governance/services/baselines.py", "record_baseline_event", "audit_record"): 1,  # comment -> BaselineEvent
    ("governance/services/clearance.py", "clearance_set", "audit_record"): 1,  # user id, levels
    ("governance/services/clearance.py", "clearance_policy_set", "audit_record"): 1,  # policy codes
    ("governance/services/passwords.py", "password_change", "audit_record"): 1,  # a code
    ("governance/services/teams.py", "team_create", "audit_record"): 1,  # slug
    ("governance/services/teams.py", "membership_grant", "audit_record"): 1,  # username, role key
    ("governance/services/templates.py", "template_log", "audit_record"): 1,  # details -> TemplateAuditLog
    ("governance/services/tokens.py", "tokens_revoke_for_user", "audit_record"): 1,  # cause code, count
}


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _calls_by_function(tree: ast.Module):
    """(enclosing top-level or nested function name, call) for every call in ``tree``."""

    def visit(node: ast.AST, function: str):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            if isinstance(child, ast.Call):
                yield inner, child
            yield from visit(child, inner)

    yield from visit(tree, "<module>")


def audit_call_sites() -> Counter:
    found: Counter = Counter()
    for path in app_modules():
        name = relative(path)
        if name == AUDIT_SERVICE:
            continue
        for function, call in _calls_by_function(parsed(path)):
            called = _called_name(call)
            if called in CALLS:
                found[(name, function, called)] += 1
    return found


def test_every_audit_call_site_is_listed_and_checked():
    found = audit_call_sites()
    unknown = sorted(set(found) - set(KNOWN_CALL_SITES))
    gone = sorted(set(KNOWN_CALL_SITES) - set(found))
    assert not unknown, (
        f"new audit call sites {unknown}: check that their payloads hold no user-written text (the rule digests the "
        "declared free-text keys; keep the text in its own record) and list them in KNOWN_CALL_SITES"
    )
    assert not gone, f"audit call sites no longer in the code: {gone}; remove them from KNOWN_CALL_SITES"
    assert dict(found) == KNOWN_CALL_SITES


def _writes_audit_rows(call: ast.Call) -> bool:
    """``AuditEvent(...)``, ``AuditEvent.objects.create/bulk_create/get_or_create/update_or_create(...)``."""
    func = call.func
    if isinstance(func, ast.Name):
        return func.id == "AuditEvent"
    if not isinstance(func, ast.Attribute) or func.attr not in {"create", "bulk_create", "get_or_create",
                                                                "update_or_create", "update"}:  # fmt: skip
        return False
    return "AuditEvent" in ast.unparse(func.value)


def test_no_module_writes_audit_rows_around_the_service():
    bypasses = [
        f"{relative(path)}:{call.lineno}"
        for path in app_modules()
        if relative(path) != AUDIT_SERVICE
        for _, call in _calls_by_function(parsed(path))
        if _writes_audit_rows(call)
    ]
    assert bypasses == []


def test_the_scan_sees_the_service_calls_it_must_see():
    """The scan itself: a module with each kind of call is found, with its enclosing function."""
    tree = ast.parse(
        "def a():\n    audit_record(action='x')\n"
        "def b():\n    audit_record_many([AuditEntry(action='y')])\n"
        "def c():\n    AuditEvent.objects.create(action='z')\n"
    )
    seen = Counter((function, _called_name(call)) for function, call in _calls_by_function(tree))
    assert seen[("a", "audit_record")] == 1 and seen[("b", "audit_record_many")] == 1 and seen[("b", "AuditEntry")] == 1
    assert [call for _, call in _calls_by_function(tree) if _writes_audit_rows(call)]
