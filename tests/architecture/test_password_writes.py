"""No code writes a password around the model signals that revoke tokens and start the password's age
(docs/authentication.md, "API tokens"): no ``QuerySet.update(password=…)``, no ``bulk_update`` or ``bulk_create``
naming the password, no raw SQL setting it. Passwords change through ``set_password`` and ``save``."""

from __future__ import annotations

import ast

from tests.architecture.sources import app_modules, parsed, relative


def _writes_password(call: ast.Call) -> bool:
    if not isinstance(call.func, ast.Attribute):
        return False
    method = call.func.attr
    if method == "update":
        return any(keyword.arg == "password" for keyword in call.keywords)
    if method in ("bulk_update", "bulk_create"):
        return any(isinstance(n, ast.Constant) and n.value == "password" for n in ast.walk(call))
    return False


def _sql_sets_password(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and "set password" in node.value.lower()


def test_no_code_writes_a_password_without_the_model_signals():
    found = []
    for path in app_modules():
        for node in ast.walk(parsed(path)):
            if (isinstance(node, ast.Call) and _writes_password(node)) or _sql_sets_password(node):
                found.append(f"{relative(path)}:{node.lineno}")
    assert found == []


def test_the_rule_sees_each_way_around_the_signals():
    source = """
User.objects.filter(pk=1).update(password="x")
User.objects.bulk_update(users, ["password"])
cursor.execute("UPDATE auth_user SET password = %s")
user.save(update_fields=["password"])
"""
    tree = ast.parse(source)
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and _writes_password(node)]
    sql = [node for node in ast.walk(tree) if _sql_sets_password(node)]
    assert [call.lineno for call in calls] == [2, 3] and [node.lineno for node in sql] == [4]
