from rest_framework import serializers


class ProgressOutput(serializers.Serializer):
    current = serializers.IntegerField()
    total = serializers.IntegerField()
    status = serializers.CharField()


class TaskStatusOutput(serializers.Serializer):
    task_id = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["PENDING", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED"]
    )
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    progress = ProgressOutput(allow_null=True)
    kind = serializers.CharField()
    accepted_at = serializers.DateTimeField()
