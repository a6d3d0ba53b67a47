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


def _normalized_stages(stages: Any) -> Any:
    if not isinstance(stages, list):
        return stages
    return [
        {"reject_meaning": DEFAULT_REJECT_MEANING, **_stage_normalize(stage)} if isinstance(stage, Mapping) else stage
        for stage in stages
    ]


def _stage_roles(stages: Any) -> list[str]:
    roles = [s.get("required_role") for s in stages if isinstance(s, Mapping)] if isinstance(stages, list) else []
    return sorted({role for role in roles if isinstance(role, str)})


def _normalized_sla(sla_defaults: Any) -> Any:
    if sla_defaults is None or sla_defaults == {}:
        return dict(DEFAULT_SLA)
    if isinstance(sla_defaults, Mapping):
        return {key: normalize_hours(value) for key, value in {**DEFAULT_SLA, **sla_defaults}.items()}
    return sla_defaults


def template_content_normalize(
    *,
    stages: Any,
    permitted_roles: Any = None,
    sla_defaults: Any = None,
    retention_days: Any = None,
) -> dict[str, Any]:
    """Fill defaults and tidy values without hiding mistakes (wrong types are left for the schema to report).

    A stage without ``reject_meaning`` gets ``DEFAULT_REJECT_MEANING``."""
    stages = _normalized_stages(stages)
    return {
        "stages": stages,
        "permitted_roles": _stage_roles(stages)
        if permitted_roles is None or permitted_roles == []
        else permitted_roles,
        "sla_defaults": _normalized_sla(sla_defaults),
        "retention_days": DEFAULT_RETENTION_DAYS if retention_days is None else retention_days,
    }


def _label(part: str | int | None) -> str:
    return LABELS.get(str(part), str(part).replace("_", " ").capitalize()) if part is not None else "Value"


# Messages of the schema validators that need only the field's label and the validator's limit.
_LIMIT_MESSAGES = {
    "type": lambda label, limit: f"{label} must be {TYPE_NAMES.get(str(limit), str(limit))}.",
    "exclusiveMinimum": lambda label, limit: f"{label} must be greater than {limit}.",
    "minimum": lambda label, limit: f"{label} must be at least {limit}.",
    "maximum": lambda label, limit: f"{label} must be at most {limit}.",
}
_TEXT_FIELDS = {"name", "meaning", "reject_meaning"}


def _required_problem(error, path: tuple) -> ContentProblem:
    match = re.match(r"'([^']+)'", error.message)
    missing = match.group(1) if match else "a value"
    return ContentProblem((*path, missing), f"{_label(missing)} is required.")


def _extras_problem(error, path: tuple) -> ContentProblem:
    known = set(error.schema.get("properties", {}))
    extras = sorted(str(key) for key in error.instance if key not in known)
    return ContentProblem(path, f"Unknown field(s): {', '.join(extras)}.")


def _text_message(error, path: tuple, label: str) -> str | None:
    validator, limit = error.validator, error.validator_value
    last = path[-1] if path else None
    if validator in {"minLength", "pattern"} and last in _TEXT_FIELDS:
        return f"{label} must not be blank."
    if validator == "pattern":
        return f"{label} '{error.instance}' is not a valid role key."
    if validator == "maxLength":
        return f"{label} must be at most {limit} characters."
    return None


def _list_message(error, path: tuple) -> str | None:
    validator, limit = error.validator, error.validator_value
    if validator == "minItems" and path == ("stages",):
        return "A template needs at least one stage."
    if validator == "maxItems" and path == ("stages",):
        return f"A template has at most {limit} stages."
    if validator == "uniqueItems":
        return f"{_label(path[0] if path else None)} must not repeat a value."
    return None


def _schema_problem(error) -> ContentProblem:
    path = tuple(error.absolute_path)
    if error.validator == "required":
        return _required_problem(error, path)
    if error.validator == "additionalProperties":
        return _extras_problem(error, path)
    label = _label(path[-1] if path and isinstance(path[-1], str) else None)
    if error.validator in _LIMIT_MESSAGES:
        return ContentProblem(path, _LIMIT_MESSAGES[error.validator](label, error.validator_value))
    message = _text_message(error, path, label) or _list_message(error, path) or error.message
    return ContentProblem(path, message)


def _permitted_problems(permitted: Any, known: set[str]) -> list[ContentProblem]:
    if not isinstance(permitted, list):
        return []
    unknown = sorted({role for role in permitted if isinstance(role, str) and role not in known})
    return [ContentProblem(("permitted_roles",), f"Unknown role(s): {', '.join(unknown)}.")] if unknown else []


def _meaning_problems(index: int, stage: Mapping[str, Any]) -> list[ContentProblem]:
    meaning, reject_meaning = stage.get("meaning"), stage.get("reject_meaning")
    if not (isinstance(meaning, str) and meaning.strip() and isinstance(reject_meaning, str)):
        return []
    if not meanings_agree(meaning, reject_meaning):
        return []
    return [
        ContentProblem(
            ("stages", index, "reject_meaning"), "The rejection meaning must differ from the approval meaning."
        )
    ]


def _name_problems(index: int, stage: Mapping[str, Any], seen: dict[str, int]) -> list[ContentProblem]:
    name = stage.get("name")
    if not (isinstance(name, str) and name.strip()):
        return []
    folded = name.strip().casefold()
    if folded in seen:
        return [
            ContentProblem(("stages", index, "name"), f"The name '{name}' is already used by stage {seen[folded] + 1}.")
        ]
    seen[folded] = index
    return []


def _role_problems(index: int, stage: Mapping[str, Any], known: set[str], permitted: set[str]) -> list[ContentProblem]:
    role = stage.get("required_role")
    if not (isinstance(role, str) and role):
        return []
    if role not in known:
        return [ContentProblem(("stages", index, "required_role"), f"Role '{role}' does not exist.")]
    if permitted and role not in permitted:
        return [
            ContentProblem(
                ("stages", index, "required_role"), f"Role '{role}' is not among the template's permitted roles."
            )
        ]
    return []


def template_content_problems(content: Mapping[str, Any], *, known_roles: Iterable[str]) -> list[ContentProblem]:
    """Everything wrong with ``content`` (normalized), in document order; an empty list means it is valid."""
    problems = [_schema_problem(error) for error in _validator().iter_errors(content)]
    known = set(known_roles)
    stages = content.get("stages")
    permitted = content.get("permitted_roles")
    permitted_set = {role for role in permitted if isinstance(role, str)} if isinstance(permitted, list) else set()
    problems += _permitted_problems(permitted, known)
    seen: dict[str, int] = {}
    for index, stage in enumerate(stages if isinstance(stages, list) else []):
        if isinstance(stage, Mapping):
            problems += _meaning_problems(index, stage)
            problems += _name_problems(index, stage, seen)
            problems += _role_problems(index, stage, known, permitted_set)
    return sorted(problems, key=_document_order)


def meanings_agree(first: str, second: str) -> bool:
    """Whether two signature meanings say the same thing (case and outer spaces aside)."""
    return first.strip().casefold() == second.strip().casefold()


def _document_order(problem: ContentProblem) -> tuple:
    order: list[str | int] = ["stages", "permitted_roles", "sla_defaults", "retention_days"]
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
