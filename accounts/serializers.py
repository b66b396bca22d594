from rest_framework import serializers

from jobs.fields import StrictCharField, StrictEmailField


class TokenObtainInput(serializers.Serializer):
    email = StrictEmailField()
    password = StrictCharField(trim_whitespace=False, max_length=256)


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()
