"""Redaction can be switched off per template, by compliance only (docs/redaction.md): audited, followed by new
exports, and stated in the bundle's bag-info as ``Redaction: off``."""

from __future__ import annotations

import pytest

from config.errors import PermissionDenied
from exports.models import ExportArtifact
from exports.services.evidence import notebook_entry_create
from exports.services.narrative_exports import EvidenceRef, export_create
from exports.services.packaging import packaging_enqueue
from governance.models import AuditEvent, WorkflowTemplate
from governance.services.templates import template_fork, template_publish, template_redaction_set
from tests.exports.bagtools import unpack
from tests.stored import plaintext_path

pytestmark = pytest.mark.django_db

SECRET = "sk-ant-api03-Xr7Tq2Lm9Vb4Nc8Wz1Hk6Jp3Ys5Gd0Fe-QaRtYuIoPlMnBvCxZ"


@pytest.fixture
def team_template(team):
    template = WorkflowTemplate.objects.create(
        team=team,
        template_key="team-release",
        version=1,
        name="Team release",
        stage_blueprints=[{"name": "Review", "required_role": "reviewer", "sla_hours": 24, "meaning": "Reviewed"}],
        permitted_roles=["reviewer"],
        sla_defaults={"sla_hours": 48, "escalate_after_hours": 24},
        retention_days=30,
    )
    template_publish(template=template)
    return template


def _export(execution, scientist):
    note = notebook_entry_create(execution=execution, actor=scientist, title="Keys", body=f"key {SECRET}")
    return export_create(
        execution=execution,
        actor=scientist,
        evidence=[EvidenceRef(kind="notebook_entry", id=note.pk)],
        template_key="team-release",
    )


def test_only_compliance_switches_redaction_and_it_is_audited(team_template, member):
    for role in ("admin", "scientist", "reviewer"):
        with pytest.raises(PermissionDenied):
            template_redaction_set(template=team_template, enabled=False, actor=member(role, username=f"u-{role}"))
    assert WorkflowTemplate.objects.get(pk=team_template.pk).redaction_enabled is True
    officer = member("compliance", username="officer")
    assert template_redaction_set(template=team_template, enabled=False, actor=officer) == 1
    assert template_redaction_set(template=team_template, enabled=False, actor=officer) == 0  # already off
    row = AuditEvent.objects.get(action="workflow_template.redaction_changed")
    assert row.payload["redaction_enabled"] is False and row.actor_id == officer.pk
    fork = template_fork(template=team_template, actor=officer)
    assert fork.redaction_enabled is False  # a new version keeps the switch
    assert template_redaction_set(template=fork, enabled=True, actor=officer) == 2
    assert set(
        WorkflowTemplate.objects.filter(template_key="team-release").values_list("redaction_enabled", flat=True)
    ) == {True}  # noqa: E501


def test_platform_templates_are_switched_by_superusers_only(published_template, member, django_user_model):
    with pytest.raises(PermissionDenied):
        template_redaction_set(template=published_template.template, enabled=False, actor=member("compliance"))
    root = django_user_model.objects.create_superuser("root", "root@example.org", "x")
    assert template_redaction_set(template=published_template.template, enabled=False, actor=root) == 1


def test_an_export_under_a_switched_off_template_is_unredacted_and_says_so(
    team_template, member, execution, scientist, allow_packaging, django_capture_on_commit_callbacks, tmp_path
):
    with django_capture_on_commit_callbacks(execute=True):
        redacted = _export(execution, scientist)
        packaging_enqueue(export=redacted)
    assert SECRET not in redacted.narrative_markdown and redacted.redaction_counts == {"ANTHROPIC_KEY": 1}

    template_redaction_set(template=team_template, enabled=False, actor=member("compliance", username="officer"))
    with django_capture_on_commit_callbacks(execute=True):
        plain = _export(execution, scientist)
        packaging_enqueue(export=plain)
    assert SECRET in plain.narrative_markdown and plain.redaction_counts == {}
    assert plain.redaction_policy == {"enabled": False}

    def bag_info(export) -> str:
        artifact = ExportArtifact.objects.get(export=export)
        bag = unpack(plaintext_path(artifact.storage_path, tmp_path / f"a{export.pk}"), tmp_path / f"b{export.pk}")
        return (bag / "bag-info.txt").read_text()

    assert "Redaction: off" in bag_info(plain)
    assert "Redaction:" not in bag_info(redacted)
