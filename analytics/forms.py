from django import forms

from approvals.choices import EscalationOutcome


class EscalationOutcomeForm(forms.Form):
    """The overdue queue row's form: the same fields as ``POST /api/governance/exports/{id}/escalations``."""

    contacted = forms.CharField(max_length=300, help_text="Who, and how.")
    outcome = forms.ChoiceField(choices=EscalationOutcome.choices)
    next_check_at = forms.DateTimeField(
        required=False,
        label="Next check (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
