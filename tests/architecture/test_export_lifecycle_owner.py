"""Only ``exports`` writes an export's ``status`` and ``packaging_queue_state`` (docs/architecture.md, "The export
lifecycle"): every other module asks through ``export_transition`` and ``export_queue_state_record``."""

from __future__ import annotations

import ast

from tests.architecture.sources import app_modules, parsed, relative

OWNER = "exports/"
COLUMNS = {"status", "packaging_queue_state"}


def _root_name(node: ast.AST) -> str:
    """The name a call or attribute chain starts from: ``NarrativeExport`` in ``NarrativeExport.objects.f().update``."""
    while isinstance(node, ast.Call | ast.Attribute | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else ""


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _call_writes(call: ast.Call) -> bool:
    """``….update(status=…)`` on ``NarrativeExport``, ``….update(packaging_queue_state=…)`` on anything,
    ``NarrativeExport.objects.bulk_update(…, ["status"])`` and ``<…export…>.save(update_fields=["status"])``."""
    if not isinstance(call.func, ast.Attribute):
        return False
    method, keywords = call.func.attr, {k.arg for k in call.keywords}
    on_exports = _root_name(call.func) == "NarrativeExport"
    if method == "update":
        return "packaging_queue_state" in keywords or (on_exports and "status" in keywords)
    if method == "bulk_update":
        return on_exports and bool(_strings(call) & COLUMNS)
    if method == "save" and "export" in ast.unparse(call.func.value).lower():
        return bool({s for k in call.keywords if k.arg == "update_fields" for s in _strings(k.value)} & COLUMNS)
    return False


def _assigned_attributes(node: ast.AST) -> list[ast.Attribute]:
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    else:
        return []
    elements = [e for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
    return [e for e in elements if isinstance(e, ast.Attribute)]


def export_column_writes(tree: ast.AST) -> list[tuple[int, str]]:
    """Writes of an export's status or queue state in ``tree``: the calls of ``_call_writes``, and assignments
    to ``<…export…>.status`` or to any ``.packaging_queue_state``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_writes(node):
            found.append((node.lineno, ast.unparse(node.func)))
        for attribute in _assigned_attributes(node):
            holder = ast.unparse(attribute.value).lower()
            if attribute.attr == "packaging_queue_state" or (attribute.attr == "status" and "export" in holder):
                found.append((attribute.lineno, ast.unparse(attribute)))
    return found


def test_no_module_outside_exports_writes_the_export_lifecycle_columns():
    offenders = [
        f"{relative(path)}:{line} {what}"
        for path in app_modules()
        if not relative(path).startswith(OWNER)
        for line, what in export_column_writes(parsed(path))
    ]
    assert offenders == [], "ask exports.services.transitions instead"


SAMPLES = {
    "NarrativeExport.objects.filter(pk=1).update(status='approved', updated_at=now)": 1,
    "NarrativeExport.objects.filter(pk=1).update(packaging_queue_state={})": 1,
    "queryset.update(packaging_queue_state={})": 1,
    "export.status = ExportStatus.REJECTED": 1,
    "export.status, export.updated_at = 'rejected', now": 1,
    "ladder.export.packaging_queue_state = state": 1,
    "locked.packaging_queue_state = state": 1,
    "export.save(update_fields=['status', 'updated_at'])": 1,
    "NarrativeExport.objects.bulk_update(rows, ['status'])": 1,
    # Not export columns: stages, ladders and other rows have statuses of their own.
    "stage.status = StageStatus.APPROVED": 0,
    "ladder.status, ladder.rejected_at = LadderStatus.REJECTED, now": 0,
    "ApprovalStage.objects.filter(pk=1).update(status='pending')": 0,
    "export.save(update_fields=['retain_until'])": 0,
    "status = export.status": 0,
}


def test_the_scan_finds_every_kind_of_write_and_nothing_else():
    for source, expected in SAMPLES.items():
        assert len(export_column_writes(ast.parse(source))) == expected, source
