import pytest

from config.errors import ValidationFailed
from governance.validation import (
    template_content_normalize,
    template_content_problems,
    template_content_validate,
    template_schema,
)

ROLES = {"reviewer", "qa_approver", "compliance", "admin"}


def content(stages, **rest):
    return template_content_normalize(stages=stages, **rest)


def keys_and_messages(problems):
    return {(p.key, p.message) for p in problems}


def good_stage(name="Review", role="reviewer", sla=24, meaning="Reviewed"):
    return {"name": name, "required_role": role, "sla_hours": sla, "meaning": meaning}


def test_the_schema_in_the_repository_is_a_valid_draft_2020_12_schema():
    schema = template_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["properties"]["stages"]["minItems"] == 1


def test_a_good_ladder_has_no_problems_and_defaults_are_filled():
    doc = content([good_stage(), good_stage("QA", "qa_approver", 48.0)])
    assert template_content_problems(doc, known_roles=ROLES) == []
    assert doc["stages"][1]["sla_hours"] == 48 and isinstance(doc["stages"][1]["sla_hours"], int)
    assert doc["permitted_roles"] == ["qa_approver", "reviewer"]
    assert doc["sla_defaults"] == {"sla_hours": 48, "escalate_after_hours": 24}
    assert doc["retention_days"] == 3650


def test_no_stage_at_all_is_refused():
    problems = template_content_problems(content([]), known_roles=ROLES)
    assert keys_and_messages(problems) == {("stages", "A template needs at least one stage.")}


def test_each_stage_problem_names_its_stage_and_field():
    doc = content(
        [
            good_stage(),
            {"name": " ", "required_role": "ghost", "sla_hours": 0, "meaning": "x"},
            {"name": "review", "required_role": "qa_approver", "sla_hours": "24", "extra": 1},
        ]
    )
    found = keys_and_messages(template_content_problems(doc, known_roles=ROLES))
    assert ("stages[1].name", "Name must not be blank.") in found
    assert ("stages[1].required_role", "Role 'ghost' does not exist.") in found
    assert ("stages[1].sla_hours", "SLA hours must be at least 0.01.") in found
    assert ("stages[2].sla_hours", "SLA hours must be a number.") in found
    assert ("stages[2].meaning", "Meaning is required.") in found
    assert ("stages[2]", "Unknown field(s): extra.") in found
    assert ("stages[2].name", "The name 'review' is already used by stage 1.") in found


def test_stage_roles_must_be_permitted_and_permitted_roles_must_exist():
    doc = content([good_stage(role="qa_approver")], permitted_roles=["reviewer", "nobody"])
    found = keys_and_messages(template_content_problems(doc, known_roles=ROLES))
    assert ("permitted_roles", "Unknown role(s): nobody.") in found
    assert ("stages[0].required_role", "Role 'qa_approver' is not among the template's permitted roles.") in found


def test_sla_defaults_and_retention_are_checked():
    doc = content([good_stage()], sla_defaults={"sla_hours": -1}, retention_days=0)
    found = keys_and_messages(template_content_problems(doc, known_roles=ROLES))
    assert ("sla_defaults.sla_hours", "SLA hours must be at least 0.01.") in found
    assert ("retention_days", "Retention days must be at least 1.") in found


def test_validate_raises_one_400_with_every_field():
    doc = content([good_stage(sla=-5), good_stage(name="Review")])
    with pytest.raises(ValidationFailed) as info:
        template_content_validate(doc, known_roles=ROLES)
    assert info.value.message.startswith("The template is not valid: Stage 1: SLA hours must be at least 0.01.")
    assert info.value.details["fields"]["stages[1].name"] == ["The name 'Review' is already used by stage 1."]


def test_wrong_types_never_crash_the_rules():
    for stages in (None, "three", [1, None, "x"], {"name": "x"}):
        problems = template_content_problems(content(stages), known_roles=ROLES)
        assert problems, stages
