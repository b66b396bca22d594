from rest_framework import serializers

from jobs.fields import FlatInputSerializer, StrictCharField, StrictEmailField


def _single_line(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise serializers.ValidationError("Must not contain line breaks.")
    return value


class SendEmailInput(FlatInputSerializer):
    to_email = StrictEmailField(max_length=254, validators=[_single_line])
    subject = StrictCharField(max_length=255, validators=[_single_line])
    body = StrictCharField(max_length=100_000, trim_whitespace=False)


class SendEmailAccepted(serializers.Serializer):
    task_id = serializers.CharField()
    status = serializers.CharField()
    message = serializers.CharField()
    email_id = serializers.IntegerField()
