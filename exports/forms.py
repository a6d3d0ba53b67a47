"""Page forms for an execution's evidence and exports, with the same fields and limits as the API serializers
(``exports/api/serializers.py``); the services they feed check everything else."""

from __future__ import annotations

from collections.abc import Sequence

from django import forms

from exports.choices import EvidenceKind
from governance.choices import Classification

NOTEBOOK_BODY_MAX = 1_000_000
TITLE_MAX = 300
NOTES_MAX = 20_000


class NotebookEntryForm(forms.Form):
    title = forms.CharField(max_length=TITLE_MAX)
    body = forms.CharField(max_length=NOTEBOOK_BODY_MAX, strip=False, widget=forms.Textarea(attrs={"rows": 5}))
    classification = forms.ChoiceField(choices=Classification.choices, initial=Classification.INTERNAL)


class EvidenceUploadForm(forms.Form):
    file = forms.FileField(allow_empty_file=True)
    title = forms.CharField(max_length=TITLE_MAX, required=False, help_text="Defaults to the file name.")
    classification = forms.ChoiceField(choices=Classification.choices, initial=Classification.INTERNAL)


def evidence_choice(kind: str, pk: int) -> str:
    """The picker's value for one evidence item: the ``kind:id`` pair the preview selector also reads."""
    return f"{kind}:{pk}"


class ExportCreateForm(forms.Form):
    """The evidence picker: one checkbox per item of this execution (``choices``), plus the export's notes."""

    evidence = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    notes = forms.CharField(max_length=NOTES_MAX, required=False, strip=False, widget=forms.Textarea(attrs={"rows": 3}))
    classification = forms.ChoiceField(
        choices=[("", "From the evidence (at least Internal)"), *Classification.choices],
        required=False,
        help_text="An export is classified at least as high as its most sensitive evidence.",
    )

    def __init__(self, *args, choices: Sequence[tuple[str, str]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        evidence = self.fields["evidence"]
        assert isinstance(evidence, forms.MultipleChoiceField)
        evidence.choices = list(choices)

    def evidence_refs(self) -> list[tuple[str, int]]:
        refs = []
        for value in self.cleaned_data["evidence"]:
            kind, _, raw_id = value.partition(":")
            refs.append((EvidenceKind(kind).value, int(raw_id)))
        return refs
