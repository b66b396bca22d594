from rest_framework import serializers

from jobs.fields import StrictCharField
from webhooks.external import URL_MAX_LENGTH, FetchRefused, FetchUnresolved, fetch_target_validate


class FetchExternalDataInput(serializers.Serializer):
    url = StrictCharField(max_length=URL_MAX_LENGTH, trim_whitespace=True)

    def validate_url(self, value: str) -> str:
        try:
            fetch_target_validate(url=value)
        except FetchUnresolved:
            pass  # allowed, but its name does not resolve now: the task looks it up again, and retries
        except FetchRefused as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class FetchExternalDataAccepted(serializers.Serializer):
    task_id = serializers.CharField()
    status = serializers.CharField()
    url = serializers.CharField()
    check_status_at = serializers.CharField()
