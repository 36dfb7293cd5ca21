from django import forms

from auditor.generation.runs import CONDITION_LABELS
from auditor.models import GeneratorRun, ImageSet


class ImageSetForm(forms.ModelForm):
    class Meta:
        model = ImageSet
        fields = ["name", "kind", "generator_name", "generator_version", "generator_weights_sha256", "description", "intended_use"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3}), "intended_use": forms.Textarea(attrs={"rows": 3})}


class TrainForm(forms.Form):
    kind = forms.ChoiceField(choices=GeneratorRun.Kind.choices)
    minutes = forms.FloatField(min_value=0.1, max_value=24 * 60, initial=10)
    condition_label = forms.ChoiceField(choices=[("", "—")] + [(c, c) for c in CONDITION_LABELS], required=False)
    image_size = forms.TypedChoiceField(choices=[(64, "64"), (128, "128"), (32, "32")], coerce=int, initial=64)
    seed = forms.IntegerField(initial=0)

    def clean(self):
        data = super().clean()
        if data.get("kind") == GeneratorRun.Kind.CDCGAN and not data.get("condition_label"):
            self.add_error("condition_label", "A conditional DCGAN needs a label to condition on.")
        return data


class SampleForm(forms.Form):
    n = forms.IntegerField(min_value=1, max_value=20000, initial=500)
    seed = forms.IntegerField(initial=0)


ANY = ""
UNLABELLED = "none"
ORDERS = [("upload", "upload order"), ("score-desc", "P(synthetic), highest first"), ("score-asc", "P(synthetic), lowest first")]


class ImageFilterForm(forms.Form):
    """The thumbnail grid's filters (a GET form): labels as imported, and one detector's P(synthetic)."""

    diagnosis = forms.ChoiceField(required=False)
    fitzpatrick = forms.ChoiceField(required=False, label="Fitzpatrick (label)")
    acquisition = forms.ChoiceField(required=False)
    detector = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Detector")
    p_min = forms.FloatField(required=False, min_value=0, max_value=1, label="P(synthetic) from")
    p_max = forms.FloatField(required=False, min_value=0, max_value=1, label="to")
    order = forms.ChoiceField(required=False, choices=ORDERS, label="Order")

    def __init__(self, data, *, counts: dict[str, dict[str, int]], detectors: list[tuple[int, str]]):
        super().__init__(data)
        for name in ("diagnosis", "fitzpatrick", "acquisition"):
            values = sorted(v for v in counts.get(name, {}) if v != "unlabelled")
            choices = [(ANY, "any")] + [(v, f"{v} ({counts[name][v]})") for v in values]
            if "unlabelled" in counts.get(name, {}):
                choices.append((UNLABELLED, f"unlabelled ({counts[name]['unlabelled']})"))
            self.fields[name].choices = choices
        self.fields["detector"].choices = [(ANY, "none")] + [(pk, label) for pk, label in detectors]
        for name in ("p_min", "p_max"):
            self.fields[name].widget.attrs.update({"step": "0.05", "inputmode": "decimal"})

    def clean(self):
        data = super().clean()
        if (data.get("p_min") is not None or data.get("p_max") is not None or (data.get("order") or "").startswith("score")) \
                and not data.get("detector"):
            raise forms.ValidationError("Choose the detector whose P(synthetic) to filter or sort by.")
        return data
