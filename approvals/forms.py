from collections.abc import Sequence

from django import forms

from approvals.choices import Decision


class SignatureComponentsForm(forms.Form):
    """The signature's components (docs/part11.md): the username is shown for the first signature of a session
    and the service decides whether it is needed; the password always."""

    username = forms.CharField(
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "username"}),
        help_text="Your username: the first signature of a session gives both components.",
    )
    password = forms.CharField(
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Re-enter your password to sign.",
    )

    def __init__(self, *args, username_required: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not username_required:
            del self.fields["username"]


class DecisionForm(SignatureComponentsForm):
    """The sign form. Its meaning follows the decision: rendered with ``stage``, the field carries the stage's
    approval and rejection meanings for ``static/js/sign-form.js`` to fill in, and a blank meaning is signed with
    the meaning of the chosen decision, so the form works the same without JavaScript."""

    field_order = ["expected_stage_id", "decision", "meaning", "comment"]  # the components come last

    expected_stage_id = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    decision = forms.ChoiceField(choices=Decision.choices, widget=forms.RadioSelect, initial=Decision.APPROVE)
    meaning = forms.CharField(max_length=200, required=False, help_text="What your signature means.")
    comment = forms.CharField(max_length=10_000, required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, stage=None, **kwargs):
        super().__init__(*args, **kwargs)
        if stage is not None:
            field = self.fields["meaning"]
            field.widget.attrs.update(
                {
                    "data-approve-meaning": stage.meaning,
                    "data-reject-meaning": stage.reject_meaning,
                    "placeholder": stage.meaning,
                }
            )
            field.help_text = (
                f"What your signature means. Left blank: “{stage.meaning}” when you approve, "
                f"“{stage.reject_meaning}” when you reject."
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

    def __init__(self, *args, candidates: Sequence[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].widget.choices = [(name, name) for name in candidates]


class ResetForm(forms.Form):
    reason = forms.CharField(max_length=2000)


class CertificationForm(forms.Form):
    statement_version = forms.CharField(widget=forms.HiddenInput, max_length=40)
    password = forms.CharField(
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Your password: certifying is itself a signature.",
    )


class ReviewCompleteForm(SignatureComponentsForm):
    field_order = ["meaning", "comment"]  # the components come last
    meaning = forms.CharField(max_length=200, required=False, help_text="Left blank: “Audit trail reviewed”.")
    comment = forms.CharField(max_length=10_000, required=False, widget=forms.Textarea(attrs={"rows": 3}))
