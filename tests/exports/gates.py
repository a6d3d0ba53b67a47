"""Packaging gates for tests, registered through DOSSIER_PACKAGING_GATES overrides."""

from exports.hooks import GateResult


def allow(export) -> GateResult:
    return GateResult(allowed=True, gate="tests.allow")


def refuse(export) -> GateResult:
    return GateResult(allowed=False, gate="tests.refuse", reason="held for review", state={"pending_stage": "QA"})


def explode(export) -> GateResult:
    raise RuntimeError("gate backend down")
