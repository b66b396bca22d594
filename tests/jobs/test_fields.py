"""jobs.fields: FlatInputSerializer must validate exactly as DRF's own Serializer does with the same fields."""

import pytest
from rest_framework import serializers

from jobs.fields import FlatInputSerializer
from notifications.serializers import SendEmailInput

# SendEmailInput's fields, with DRF's deep-copying get_fields.
DeepCopyingTwin = type("DeepCopyingTwin", (serializers.Serializer,), dict(SendEmailInput._declared_fields))


INPUTS = [
    {"to_email": "a@example.com", "subject": "Hi", "body": "Hello"},
    {"to_email": "not-an-email", "subject": "Hi", "body": "Hello"},
    {"to_email": "a@example.com\nBcc: b@example.com", "subject": "Hi", "body": "x"},
    {"to_email": 5, "subject": ["x"], "body": None},
    {"to_email": "a@example.com", "subject": "x" * 256, "body": "  kept  "},
    {"subject": "", "body": ""},
    {},
]


@pytest.mark.parametrize("data", INPUTS)
def test_it_validates_as_drfs_serializer_does(data):
    ours, drfs = SendEmailInput(data=data), DeepCopyingTwin(data=data)
    assert ours.is_valid() == drfs.is_valid()
    assert ours.errors == drfs.errors
    if not ours.errors:
        assert ours.validated_data == drfs.validated_data


def test_each_instance_binds_its_own_fields_and_the_declared_ones_stay_unbound():
    first, second = SendEmailInput(data=INPUTS[1]), SendEmailInput(data=INPUTS[0])
    assert not first.is_valid()
    assert second.is_valid(), second.errors
    for name, declared in SendEmailInput._declared_fields.items():
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first and second.fields[name].parent is second
        assert declared.parent is None and declared.field_name is None
    # The first instance's failure left nothing on the shared validators or messages.
    assert SendEmailInput(data=INPUTS[0]).is_valid()


@pytest.mark.parametrize(
    "field",
    [
        serializers.ListField(child=serializers.IntegerField()),
        serializers.DictField(child=serializers.CharField()),
        serializers.JSONField(default={}),
        serializers.CharField(initial=["x"]),
        DeepCopyingTwin(),
    ],
)
def test_fields_a_shallow_copy_would_share_are_refused(field):
    with pytest.raises(TypeError, match="plain fields only"):
        type("Bad", (FlatInputSerializer,), {"field": field})


def test_plain_fields_with_immutable_defaults_are_accepted():
    type("Fine", (FlatInputSerializer,), {"n": serializers.IntegerField(default=3), "s": serializers.CharField()})
