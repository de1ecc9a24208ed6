"""Pictures derived from a job's files (the picture of its regenerated area, its painted mask,
an output in another format for a link), made once and kept beside the job (issue 52): the
first request makes one, through the web process' gate, and stores it; every later request
serves the stored file and decodes nothing. They are deleted with the job (their rows cascade,
and django-cleanup deletes the files)."""

from __future__ import annotations

from collections.abc import Callable

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models.fields.files import FieldFile

from ..errors import ClientError
from ..models import DerivedPicture, Generation


def derived_picture(
    *, generation: Generation, kind: str, extension: str, make: Callable[[], bytes]
) -> FieldFile:
    """The stored ``kind`` picture of ``generation``, made by ``make()`` (its bytes, in the
    format ``extension`` names) the first time it is asked for. Two first requests at once
    both make it; one row is kept, and the other's file is deleted."""
    found = DerivedPicture.objects.filter(generation=generation, kind=kind).first()
    if found is not None:
        return found.file
    data = make()
    row = DerivedPicture(generation=generation, kind=kind, stored_bytes=len(data))
    row.file.save(f"{kind}.{extension}", ContentFile(data), save=False)
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:  # made at the same time by another request (keep theirs), or deleted
        row.file.delete(save=False)
        found = DerivedPicture.objects.filter(generation=generation, kind=kind).first()
        if found is None:
            raise ClientError("This generation no longer exists.", status=404) from None
        return found.file
    return row.file
