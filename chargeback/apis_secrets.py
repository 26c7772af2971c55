"""Management API of provider secrets: `/v1/provider-secrets`. The value is write-only: no
answer ever contains it (chargeback/provider_secrets.py). Scoped to the admin token's
organization; another organization's secret is a 404 like one that does not exist."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from chargeback.auth import actor_of, via_of
from chargeback.errors import ApplicationError
from chargeback.pagination import LimitOffsetPage
from chargeback.provider_secrets import (
    provider_secret_delete,
    provider_secret_get,
    provider_secret_set,
    provider_secrets_of,
)

ERROR = inline_serializer(
    "ProviderSecretError", {"detail": serializers.CharField(), "code": serializers.CharField()}
)


class SecretOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    hint = serializers.CharField(help_text="the value's last 4 characters (empty if short)")
    created_at = serializers.DateTimeField()
    rotated_at = serializers.DateTimeField(allow_null=True)
    targets = serializers.SerializerMethodField(help_text="ids of the targets that use it")

    def get_targets(self, obj) -> list[str]:
        users = getattr(obj, "users", None)
        if users is None:
            users = obj.targets.order_by("target_id")
        return [t.target_id for t in users]


class SecretInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    value = serializers.CharField(
        write_only=True, trim_whitespace=True, help_text="the provider key; never returned"
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


class ProviderSecretListApi(APIView):
    pagination_class = LimitOffsetPage

    @extend_schema(
        operation_id="provider_secrets_list",
        summary="The organization's provider secrets (never their values)",
        responses={200: SecretOutputSerializer(many=True)},
    )
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            provider_secrets_of(organization=request.organization), request, view=self
        )
        return paginator.get_paginated_response(SecretOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="provider_secrets_set",
        summary="Store a provider secret, or rotate it if the name exists (201 / 200)",
        request=SecretInputSerializer,
        responses={
            201: SecretOutputSerializer,
            200: SecretOutputSerializer,
            400: OpenApiResponse(description="bad name or value: {field: [message]}"),
            503: OpenApiResponse(ERROR, description="the server has no KT_SECRETS_KEY"),
        },
    )
    def post(self, request):
        data = SecretInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            secret, created = provider_secret_set(
                organization=request.organization,
                name=data.validated_data["name"],
                value=data.validated_data["value"],
                actor=actor_of(request),
                via=via_of(request),
            )
        except ApplicationError as exc:
            if exc.field is None:  # not about the input (no encryption key configured: 503)
                raise
            raise ValidationError({exc.field: [exc.message]}) from None
        return Response(
            SecretOutputSerializer(secret).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ProviderSecretDetailApi(APIView):
    @extend_schema(
        operation_id="provider_secrets_retrieve",
        summary="One provider secret (never its value)",
        responses={200: SecretOutputSerializer, 404: OpenApiResponse(ERROR)},
    )
    def get(self, request, name):
        secret = provider_secret_get(organization=request.organization, name=name)
        return Response(SecretOutputSerializer(secret).data)

    @extend_schema(
        operation_id="provider_secrets_delete",
        summary="Delete a provider secret no target uses",
        responses={
            204: None,
            404: OpenApiResponse(ERROR),
            409: OpenApiResponse(ERROR, description="targets still use it"),
        },
    )
    def delete(self, request, name):
        secret = provider_secret_get(organization=request.organization, name=name)
        provider_secret_delete(secret=secret, actor=actor_of(request), via=via_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
