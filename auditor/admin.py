from django.contrib import admin

from auditor.models import DuplicateRecord, Image, ImageSet, IngestError, IngestJob, Membership, Organisation


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organisation", "role"]
    list_filter = ["role", "organisation"]


@admin.register(ImageSet)
class ImageSetAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "organisation", "manifest_sha256", "created_at"]
    list_filter = ["kind", "organisation"]
    search_fields = ["name", "generator_name"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["original_name", "image_set", "width", "height", "original_format", "diagnosis", "fitzpatrick"]
    list_filter = ["image_set", "acquisition", "fitzpatrick"]
    search_fields = ["original_name", "sha256"]


@admin.register(IngestJob)
class IngestJobAdmin(admin.ModelAdmin):
    list_display = ["id", "image_set", "status", "processed", "total", "created_at"]
    list_filter = ["status"]


@admin.register(IngestError)
class IngestErrorAdmin(admin.ModelAdmin):
    list_display = ["file_name", "reason", "image_set", "created_at"]


@admin.register(DuplicateRecord)
class DuplicateRecordAdmin(admin.ModelAdmin):
    list_display = ["file_name", "duplicate_of", "image_set"]
