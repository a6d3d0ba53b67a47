"""Rules for template content: the JSON Schema kept in ``governance/schemas`` plus the checks that need data.

The same problems feed the API (400 with one message per field path, e.g. ``stages[1].sla_hours``) and the admin
(each message attached to the inline stage form and field it concerns).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from config.errors import ValidationFailed

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "workflow_template.schema.json"
DEFAULT_SLA = {"sla_hours": 48, "escalate_after_hours": 24}
DEFAULT_RETENTION_DAYS = 3650
STAGE_FIELDS = ("name", "required_role", "sla_hours", "meaning", "reject_meaning")
# What a rejection means when the stage does not say (docs/templates-and-baselines.md).
DEFAULT_REJECT_MEANING = "Rejected"

LABELS = {
    "name": "Name",
    "required_role": "Role",
    "sla_hours": "SLA hours",
    "meaning": "Meaning",
    "reject_meaning": "Rejection meaning",
    "escalate_after_hours": "Escalate after hours",
    "stages": "Stages",
    "permitted_roles": "Permitted roles",
    "sla_defaults": "SLA defaults",
    "retention_days": "Retention days",
}
TYPE_NAMES = {
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "array": "a list",
    "object": "an object",
}


@functools.cache
def template_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


@functools.cache
def _validator() -> Draft202012Validator:
    schema = template_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@dataclass(frozen=True)
class ContentProblem:
    """One thing wrong with a template's content, located by a path such as ``("stages", 1, "sla_hours")``."""

    path: tuple[str | int, ...]
    message: str

    @property
    def key(self) -> str:
        """``stages[1].sla_hours``, ``sla_defaults.sla_hours``, ``stages``."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out or "non_field_errors"

    @property
    def stage_index(self) -> int | None:
        if len(self.path) >= 2 and self.path[0] == "stages" and isinstance(self.path[1], int):
            return self.path[1]
        return None

    @property
    def stage_field(self) -> str | None:
        return str(self.path[2]) if self.stage_index is not None and len(self.path) >= 3 else None

    @property
    def sentence(self) -> str:
        """The message with its place in words: "Stage 2: SLA hours must be greater than 0." """
        if self.stage_index is not None:
            return f"Stage {self.stage_index + 1}: {self.message}"
        return self.message


def normalize_hours(value: Any) -> Any:
    """24.0 and Decimal('24.00') become 24; Decimal('1.50') becomes 1.5. Anything else is left to the schema."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _stage_normalize(stage: Mapping[str, Any]) -> dict[str, Any]:
    return {key: (normalize_hours(value) if key == "sla_hours" else _text(value)) for key, value in stage.items()}


def _text(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def template_content_normalize(
    *,
    stages: Any,
    permitted_roles: Any = None,
    sla_defaults: Any = None,
    retention_days: Any = None,
) -> dict[str, Any]:
    """Fill defaults and tidy values without hiding mistakes (wrong types are left for the schema to report).

    A stage without ``reject_meaning`` gets ``DEFAULT_REJECT_MEANING``."""
    if isinstance(stages, list):
        stages = [
            {"reject_meaning": DEFAULT_REJECT_MEANING, **_stage_normalize(stage)}
            if isinstance(stage, Mapping)
            else stage
            for stage in stages
        ]
    if permitted_roles is None or permitted_roles == []:
        roles = [s.get("required_role") for s in stages if isinstance(s, Mapping)] if isinstance(stages, list) else []
        permitted_roles = sorted({role for role in roles if isinstance(role, str)})
    if sla_defaults is None or sla_defaults == {}:
        sla_defaults = dict(DEFAULT_SLA)
    elif isinstance(sla_defaults, Mapping):
        sla_defaults = {key: normalize_hours(value) for key, value in {**DEFAULT_SLA, **sla_defaults}.items()}
    return {
        "stages": stages,
        "permitted_roles": permitted_roles,
        "sla_defaults": sla_defaults,
        "retention_days": DEFAULT_RETENTION_DAYS if retention_days is None else retention_days,
    }


def _label(part: str | int | None) -> str:
    return LABELS.get(str(part), str(part).replace("_", " ").capitalize()) if part is not None else "Value"


def _schema_problem(error) -> ContentProblem:
    path = tuple(error.absolute_path)
    last = path[-1] if path and isinstance(path[-1], str) else None
    label = _label(last)
    validator, limit = error.validator, error.validator_value
    if validator == "required":
        match = re.match(r"'([^']+)'", error.message)
        missing = match.group(1) if match else "a value"
        return ContentProblem((*path, missing), f"{_label(missing)} is required.")
    if validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        extras = sorted(str(key) for key in error.instance if key not in known)
        return ContentProblem(path, f"Unknown field(s): {', '.join(extras)}.")
    if validator == "type":
        return ContentProblem(path, f"{label} must be {TYPE_NAMES.get(str(limit), str(limit))}.")
    if validator == "exclusiveMinimum":
        return ContentProblem(path, f"{label} must be greater than {limit}.")
    if validator == "minimum":
        return ContentProblem(path, f"{label} must be at least {limit}.")
    if validator == "maximum":
        return ContentProblem(path, f"{label} must be at most {limit}.")
    if validator in {"minLength", "pattern"} and last in {"name", "meaning", "reject_meaning"}:
        return ContentProblem(path, f"{label} must not be blank.")
    if validator == "pattern":
        return ContentProblem(path, f"{label} '{error.instance}' is not a valid role key.")
    if validator == "maxLength":
        return ContentProblem(path, f"{label} must be at most {limit} characters.")
    if validator == "minItems" and path == ("stages",):
        return ContentProblem(path, "A template needs at least one stage.")
    if validator == "maxItems" and path == ("stages",):
        return ContentProblem(path, f"A template has at most {limit} stages.")
    if validator == "uniqueItems":
        return ContentProblem(path, f"{_label(path[0] if path else None)} must not repeat a value.")
    return ContentProblem(path, error.message)


def template_content_problems(content: Mapping[str, Any], *, known_roles: Iterable[str]) -> list[ContentProblem]:
    """Everything wrong with ``content`` (normalized), in document order; an empty list means it is valid."""
    problems = [_schema_problem(error) for error in _validator().iter_errors(content)]
    known = set(known_roles)
    stages = content.get("stages")
    permitted = content.get("permitted_roles")
    permitted_set = {role for role in permitted if isinstance(role, str)} if isinstance(permitted, list) else set()
    if isinstance(permitted, list):
        unknown = sorted(role for role in permitted_set if role not in known)
        if unknown:
            problems.append(ContentProblem(("permitted_roles",), f"Unknown role(s): {', '.join(unknown)}."))
    if isinstance(stages, list):
        seen: dict[str, int] = {}
        for index, stage in enumerate(stages):
            if not isinstance(stage, Mapping):
                continue
            name, role = stage.get("name"), stage.get("required_role")
            meaning, reject_meaning = stage.get("meaning"), stage.get("reject_meaning")
            if (
                isinstance(meaning, str)
                and meaning.strip()
                and isinstance(reject_meaning, str)
                and meanings_agree(meaning, reject_meaning)
            ):
                problems.append(
                    ContentProblem(
                        ("stages", index, "reject_meaning"),
                        "The rejection meaning must differ from the approval meaning.",
                    )
                )
            if isinstance(name, str) and name.strip():
                folded = name.strip().casefold()
                if folded in seen:
                    problems.append(
                        ContentProblem(
                            ("stages", index, "name"), f"The name '{name}' is already used by stage {seen[folded] + 1}."
                        )
                    )
                else:
                    seen[folded] = index
            if isinstance(role, str) and role:
                if role not in known:
                    problems.append(
                        ContentProblem(("stages", index, "required_role"), f"Role '{role}' does not exist.")
                    )
                elif permitted_set and role not in permitted_set:
                    problems.append(
                        ContentProblem(
                            ("stages", index, "required_role"),
                            f"Role '{role}' is not among the template's permitted roles.",
                        )
                    )
    return sorted(problems, key=_document_order)


def meanings_agree(first: str, second: str) -> bool:
    """Whether two signature meanings say the same thing (case and outer spaces aside)."""
    return first.strip().casefold() == second.strip().casefold()


def _document_order(problem: ContentProblem) -> tuple:
    order = ["stages", "permitted_roles", "sla_defaults", "retention_days"]
    head = problem.path[0] if problem.path else ""
    rank = order.index(head) if head in order else len(order)
    index = problem.stage_index if problem.stage_index is not None else -1
    field = STAGE_FIELDS.index(problem.stage_field) if problem.stage_field in STAGE_FIELDS else len(STAGE_FIELDS)
    return (rank, index, field, problem.key)


def problems_as_details(problems: list[ContentProblem]) -> dict[str, Any]:
    fields: dict[str, list[str]] = {}
    for problem in problems:
        fields.setdefault(problem.key, []).append(problem.message)
    return {"fields": fields}


def template_content_validate(content: Mapping[str, Any], *, known_roles: Iterable[str]) -> None:
    """Raise ``ValidationFailed`` (400, one message per field path) when the content breaks a rule."""
    problems = template_content_problems(content, known_roles=known_roles)
    if not problems:
        return
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise ValidationFailed(
        f"The template is not valid: {problems[0].sentence}{more}",
        details=problems_as_details(problems),
    )
