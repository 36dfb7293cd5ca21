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
