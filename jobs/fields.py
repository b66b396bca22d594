"""Serializer fields for API input that every app's input serializers use."""

import copy

from rest_framework import serializers


class FlatInputSerializer(serializers.Serializer):
    """An input serializer of plain fields only (no nested serializer, no field with a child), for hot endpoints.

    DRF deep-copies every declared field for every serializer instance, running each field's ``__init__`` again, so
    that an instance may change its fields; that cost more than the validation itself on every send-email request.
    These fields are never changed after they are declared, so each instance gets shallow copies to bind: their own
    name and parent, the declared validators and messages shared.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, field in cls._declared_fields.items():
            # What a shallow copy would share between requests: a nested serializer, a child field (bound to the
            # declared field, not to the serializer in use), a default or initial value that validation hands out.
            nested = (
                isinstance(field, serializers.BaseSerializer)
                or hasattr(field, "child")
                or hasattr(field, "child_relation")
            )
            shared = any(isinstance(getattr(field, attr, None), dict | list | set) for attr in ("default", "initial"))
            if nested or shared:
                raise TypeError(f"{cls.__name__}.{name}: a FlatInputSerializer takes plain fields only")

    def get_fields(self):
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}


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
