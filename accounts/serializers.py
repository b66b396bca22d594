from rest_framework import serializers


class TokenObtainInput(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(trim_whitespace=False, max_length=256)


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()
