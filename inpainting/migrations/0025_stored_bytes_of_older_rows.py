"""The bytes of rows stored before their files were counted (migration 0017 added the counts
at 0): each row's files are measured once, so the storage quota, the admin and /metrics count
what older jobs hold too. A file that is gone counts nothing."""

from django.db import migrations

#: The models whose rows count their files in their owner's usage, and those files.
COUNTED = {
    "SourceImage": ("file", "thumbnail"),
    "Mask": ("file", "thumbnail"),
    "GeneratedImage": ("file", "thumbnail"),
    "DerivedPicture": ("file",),
}


def _size(field_file) -> int:
    if not field_file:
        return 0
    try:
        return field_file.storage.size(field_file.name)
    except (OSError, NotImplementedError):
        return 0


def count_stored_bytes(apps, schema_editor) -> None:
    for name, fields in COUNTED.items():
        model = apps.get_model("inpainting", name)
        for row in model.objects.filter(stored_bytes=0).iterator():
            counted = sum(_size(getattr(row, field)) for field in fields)
            if counted:
                model.objects.filter(pk=row.pk).update(stored_bytes=counted)


class Migration(migrations.Migration):
    dependencies = [
        ("inpainting", "0024_a1111_kept_options"),
    ]

    operations = [migrations.RunPython(count_stored_bytes, migrations.RunPython.noop)]
