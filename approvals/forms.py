from django import forms

from approvals.choices import Decision


class DecisionForm(forms.Form):
    expected_stage_id = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    decision = forms.ChoiceField(choices=Decision.choices, widget=forms.RadioSelect, initial=Decision.APPROVE)
    meaning = forms.CharField(max_length=200, required=False, help_text="What your signature means.")
    comment = forms.CharField(max_length=10_000, required=False, widget=forms.Textarea(attrs={"rows": 3}))
    password = forms.CharField(
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Re-enter your password to sign.",
    )


class DelegateForm(forms.Form):
    # Rendered as a select of the members holding the stage's role; the service is what checks the choice.
    assignee = forms.CharField(max_length=150, widget=forms.Select)
    reason = forms.CharField(max_length=2000)
    due_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional new due date (UTC), for the active stage.",
    )

    def __init__(self, *args, candidates: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].widget.choices = [(name, name) for name in candidates]


class ResetForm(forms.Form):
    reason = forms.CharField(max_length=2000)
