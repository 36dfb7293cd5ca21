from django import forms

from ..models import ImageSet


class ImageSetForm(forms.ModelForm):
    class Meta:
        model = ImageSet
        fields = ["name", "kind", "generator_name", "generator_version", "generator_weights_sha256", "description", "intended_use"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3}), "intended_use": forms.Textarea(attrs={"rows": 3})}
