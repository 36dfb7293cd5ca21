from __future__ import annotations

from django import forms

from auditor.models import ImageSet

from .models import SYNTHETIC_KINDS, ReaderProfile, Study
from .services import ArmSpec, StudyDesign


class ReaderProfileForm(forms.ModelForm):
    class Meta:
        model = ReaderProfile
        fields = ["specialty", "years_experience", "board_certified"]
        labels = {"years_experience": "Years of experience", "board_certified": "Board certified in dermatology"}
        widgets = {"years_experience": forms.NumberInput(attrs={"min": 0, "max": 70})}


class StudyDesignForm(forms.Form):
    """The design form: study questions, and one count field per image set the user may draw from."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    balance_by = forms.ChoiceField(choices=Study.BalanceBy.choices, required=False)
    repeat_fraction = forms.FloatField(min_value=0, max_value=0.5, initial=0.1,
                                       help_text="share of cases shown a second time, later in the session")
    ask_call = forms.BooleanField(required=False, initial=True, label="Ask: real or synthetic?")
    confidence_scale = forms.ChoiceField(choices=Study.ConfidenceScale.choices, initial=Study.ConfidenceScale.FIVE_POINT)
    ask_quality = forms.BooleanField(required=False, initial=True, label="Ask: image quality (1–5)")
    ask_diagnosis = forms.BooleanField(required=False, label="Ask: diagnosis (from the images' labels)")
    allow_changes = forms.BooleanField(required=False, label="Readers may change answers until close")
    image_size = forms.IntegerField(min_value=64, max_value=2048, initial=512, help_text="pixels, square")
    seed = forms.IntegerField(min_value=0, required=False, help_text="blank: random (recorded)")

    def __init__(self, *args, image_sets: list[ImageSet], **kwargs):
        super().__init__(*args, **kwargs)
        self.image_sets = image_sets
        for image_set in image_sets:
            self.fields[self.count_field(image_set)] = forms.IntegerField(
                min_value=0, max_value=image_set.image_count, initial=0, required=False,
                label=f"{image_set.name} ({'synthetic' if image_set.kind in SYNTHETIC_KINDS else 'real'})",
            )

    @staticmethod
    def count_field(image_set: ImageSet) -> str:
        return f"count_{image_set.pk}"

    def set_rows(self):
        return [(s, self[self.count_field(s)]) for s in self.image_sets]

    def clean(self):
        cleaned = super().clean()
        chosen = [s for s in self.image_sets if cleaned.get(self.count_field(s))]
        if len({s.organisation_id for s in chosen}) > 1:
            raise forms.ValidationError("all image sets of a study must belong to one organisation")
        cleaned["chosen_sets"] = chosen
        return cleaned

    def design(self) -> StudyDesign:
        data = self.cleaned_data
        return StudyDesign(
            name=data["name"], description=data["description"],
            arms=tuple(ArmSpec(s.pk, data[self.count_field(s)]) for s in data["chosen_sets"]),
            balance_by=data["balance_by"] or "", repeat_fraction=data["repeat_fraction"], ask_call=data["ask_call"],
            confidence_scale=data["confidence_scale"], ask_quality=data["ask_quality"],
            ask_diagnosis=data["ask_diagnosis"], allow_changes=data["allow_changes"], image_size=data["image_size"],
            seed=data["seed"],
        )


class InviteForm(forms.Form):
    readers = forms.ModelMultipleChoiceField(queryset=None, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, eligible, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["readers"].queryset = eligible
