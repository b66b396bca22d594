"""Serializer fields for API input that every app's input serializers use."""

from rest_framework import serializers


class _StringOnly:
    """Refuse anything but a JSON string: DRF's CharField would turn 5 into "5" and accept it."""

    default_error_messages = {"not_a_string": "Not a valid string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictCharField(_StringOnly, serializers.CharField):
    pass


class StrictEmailField(_StringOnly, serializers.EmailField):
    pass
