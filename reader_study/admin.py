from django.contrib import admin

from .models import Answer, Assignment, Case, ReaderProfile, Study, StudyArm, StudyResult


@admin.register(ReaderProfile)
class ReaderProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "specialty", "years_experience", "board_certified"]
    list_filter = ["specialty", "board_certified"]


class StudyArmInline(admin.TabularInline):
    model = StudyArm
    extra = 0
    readonly_fields = ["image_set", "count", "truth_synthetic", "label"]
    can_delete = False


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["name", "organisation", "status", "created_at", "closed_at"]
    list_filter = ["status", "organisation"]
    inlines = [StudyArmInline]
    # Design and cases are fixed at creation; status changes go through the service (locking, results).
    readonly_fields = ["status", "seed", "padded_image_bytes", "opened_at", "closed_at", "diagnosis_choices"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["study", "reader", "invited_at"]
    readonly_fields = ["order_seed"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Cases, answers and results are evidence: visible to staff, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    list_display = ["id", "study", "arm", "truth_synthetic", "reference_diagnosis"]
    list_filter = ["study"]


@admin.register(Answer)
class AnswerAdmin(ReadOnlyAdmin):
    list_display = ["showing", "called_synthetic", "confidence", "quality", "diagnosis", "duration_ms", "revisions"]


@admin.register(StudyResult)
class StudyResultAdmin(ReadOnlyAdmin):
    list_display = ["study", "answers_sha256", "computed_at"]
