"""Serializers that only document response shapes built by ``answers`` (OpenAPI)."""

from rest_framework import serializers

from ..models import Generation


class ProgressDoc(serializers.Serializer):
    step = serializers.IntegerField()
    total = serializers.IntegerField()
    percent = serializers.FloatField()


class WebhookDoc(serializers.Serializer):
    url = serializers.URLField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    error = serializers.CharField(allow_null=True)


class GenerationDoc(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Generation.Status.choices)
    client = serializers.CharField()
    owner = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    progress = ProgressDoc()
    queue_position = serializers.IntegerField(allow_null=True)
    attempts = serializers.IntegerField()
    error = serializers.CharField(allow_null=True)
    images = serializers.ListField(child=serializers.URLField())
    input_image = serializers.URLField()
    mask_image = serializers.URLField(allow_null=True)
    regenerated_image = serializers.URLField(
        allow_null=True,
        help_text="the input on the job's canvas with the regenerated area tinted red (null "
        "for an upscale job)",
    )
    metadata = serializers.DictField()
    websocket = serializers.CharField()
    webhook = WebhookDoc(allow_null=True)
