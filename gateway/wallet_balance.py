"""`GET /v1/wallets/balance`: the cascade of a caller (wallets/cascade.py), every scope with its
balance, held, available and status, and the scope effective now.

Two callers: an application with its consumer-group key sees its own chain (its department's
team wallet; `user_id` adds that end user's wallet); finance with the admin token names any
`team_id` and/or `user_id` of its organization. It lives in the gateway because it reads the
consumer-group key (gateway/auth.py); its URL is routed ahead of `wallets/<team_id>`.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from chargeback.auth import AdminTokenAuthentication, bearer_token
from chargeback.keys import hash_key
from chargeback.models import AdminToken, Department, Organization
from chargeback.openapi import ErrorSerializer
from chargeback.serializers import MoneyField
from gateway.auth import GroupContext, group_authenticate
from gateway.errors import GatewayError
from wallets.cascade import cascade_summary


class AdminTokenOrGroupKey(BaseAuthentication):
    """The admin token (`request.auth` an AdminToken, `request.organization` set) or else a
    consumer group's key (`request.auth` its GroupContext)."""

    def authenticate(self, request):
        raw = bearer_token(request) or request.META.get("HTTP_X_API_KEY", "").strip()
        if not raw:
            return None
        if AdminToken.objects.filter(token_hash=hash_key(raw), is_active=True).exists():
            return AdminTokenAuthentication().authenticate(request)
        try:
            return None, group_authenticate(request._request)
        except GatewayError:
            raise exceptions.AuthenticationFailed("invalid admin token or key") from None

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class AdminTokenOrGroupKeyScheme(OpenApiAuthenticationExtension):
    """Documents the two credentials of `GET /v1/wallets/balance` in /api/docs/."""

    target_class = "gateway.wallet_balance.AdminTokenOrGroupKey"
    name = "AdminTokenOrGroupKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "an organization's admin token, or a consumer group's key",
        }


class AdminOrGroup(BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.auth, AdminToken | GroupContext)


class ScopeSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=["user", "team", "organization"])
    exists = serializers.BooleanField(help_text="the wallet exists")
    in_chain = serializers.BooleanField(help_text="a request may be paid from it")
    skipped = serializers.ChoiceField(
        choices=["missing", "strict"],
        required=False,
        help_text="why not: no such wallet, or the department is strict (fall_through false)",
    )
    name = serializers.CharField(required=False)
    balance = MoneyField(required=False)
    held = MoneyField(required=False)
    available = MoneyField(required=False, help_text="balance - held")
    # A plain string: a second "status" enum of these values collides in the schema's names.
    status = serializers.CharField(required=False, help_text="healthy, low or depleted")
    effective = serializers.BooleanField(help_text="the first scope with funds available now")


class BalanceSerializer(serializers.Serializer):
    team_id = serializers.CharField(source="department.team_id", allow_null=True, default=None)
    user_id = serializers.CharField(source="user_ref")
    currency = serializers.CharField()
    fall_through = serializers.BooleanField(
        help_text="false: the team wallet is a hard cap, the organization's never pays"
    )
    effective_scope = serializers.CharField(
        allow_null=True, help_text="user, team or organization; null: none has funds"
    )
    scopes = ScopeSerializer(many=True, help_text="in the order a request tries them")


class WalletBalanceApi(APIView):
    authentication_classes = [AdminTokenOrGroupKey]
    permission_classes = [AdminOrGroup]

    class FilterSerializer(serializers.Serializer):
        team_id = serializers.CharField(
            max_length=100, required=False, help_text="admin token only"
        )
        user_id = serializers.CharField(max_length=200, required=False)

    @extend_schema(
        operation_id="wallets_balance",
        summary="The cascade (user, team, organization) of a key, team or end user",
        parameters=[FilterSerializer],
        responses={
            200: BalanceSerializer,
            400: OpenApiResponse(description="unknown team_id"),
            401: OpenApiResponse(ErrorSerializer, description="no valid admin token or key"),
            403: OpenApiResponse(ErrorSerializer, description="team_id with a group's key"),
        },
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        if isinstance(request.auth, GroupContext):
            ctx = request.auth
            if "team_id" in data:
                raise exceptions.PermissionDenied("team_id needs the admin token")
            organization = Organization.objects.get(pk=ctx.organization_id)
            department = Department.objects.filter(
                organization=organization, pk=ctx.department_id
            ).first()
        else:
            organization = request.organization
            department = None
            if "team_id" in data:
                department = Department.objects.filter(
                    organization=organization, team_id=data["team_id"]
                ).first()
                if department is None:
                    raise serializers.ValidationError(
                        {"team_id": [f"unknown team {data['team_id']!r}"]}
                    )
        summary = cascade_summary(
            organization=organization, department=department, user_ref=data.get("user_id", "")
        )
        return Response(BalanceSerializer(summary).data)
