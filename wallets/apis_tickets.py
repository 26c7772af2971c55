"""`GET /v1/cost-tickets` and `POST /v1/cost-tickets/{ticket_id}/approve|deny`: finance decides
the requests no wallet could cover (wallets/tickets/services.py). Scoped to the token's
organization: another organization's ticket is a 404."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from chargeback.auth import actor_of, via_of
from chargeback.openapi import conflict
from chargeback.serializers import MoneyField
from wallets.apis import BAD_REQUEST, ERRORS, WalletPagination
from wallets.models_tickets import CostTicket
from wallets.tickets import selectors, services


class CostTicketSerializer(serializers.Serializer):
    id = serializers.CharField(source="ticket_id", help_text="tkt_...")
    status = serializers.ChoiceField(choices=CostTicket.Status.choices)
    team_id = serializers.CharField(source="department.team_id", allow_null=True, default=None)
    consumer_group = serializers.CharField(
        source="consumer_group.name", allow_null=True, default=None
    )
    user_id = serializers.CharField(source="user_ref")
    model = serializers.CharField()
    estimate = MoneyField(help_text="the refused request's worst case: what approval allows")
    currency = serializers.CharField()
    wallet_scope = serializers.CharField(source="wallet.scope", help_text="where approval lands")
    request_id = serializers.CharField(help_text="the refused request's x-kt-request-id")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    decided_by = serializers.CharField()
    redeemed_at = serializers.DateTimeField(allow_null=True)
    redeemed_request_id = serializers.CharField()


class CostTicketPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = CostTicketSerializer(many=True)


class CostTicketListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=CostTicket.Status.choices, required=False)
        limit = serializers.IntegerField(min_value=1, required=False)
        offset = serializers.IntegerField(min_value=0, required=False)

    @extend_schema(
        operation_id="cost_tickets_list",
        summary="The organization's cost tickets, newest first (`?status=pending` for the queue)",
        parameters=[FilterSerializer],
        responses={200: CostTicketPageSerializer, 400: BAD_REQUEST, 401: ERRORS[401]},
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        rows = selectors.tickets_for_org(
            organization=request.organization, status=filters.validated_data.get("status")
        )
        paginator = WalletPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(CostTicketSerializer(page, many=True).data)


def _decision(action: str, summary: str):
    decide = {"approve": services.ticket_approve, "deny": services.ticket_deny}[action]

    class DecisionApi(APIView):
        @extend_schema(
            operation_id=f"cost_tickets_{action}",
            summary=summary,
            request=None,
            responses={
                200: CostTicketSerializer,
                **ERRORS,
                404: OpenApiResponse(description="no such ticket in this organization"),
                409: conflict("the ticket is not pending (decided otherwise, expired, redeemed)"),
            },
        )
        def post(self, request, ticket_id):
            ticket = decide(
                organization=request.organization,
                ticket_id=ticket_id,
                actor=actor_of(request),
                via=via_of(request),
            )
            return Response(CostTicketSerializer(ticket).data)

    DecisionApi.__name__ = DecisionApi.__qualname__ = f"CostTicket{action.title()}Api"
    return DecisionApi


CostTicketApproveApi = _decision(
    "approve",
    "Approve a pending cost ticket: its estimate may be overdrawn once, by the retry carrying "
    "X-KT-Ticket (again: the ticket as it is)",
)
CostTicketDenyApi = _decision("deny", "Deny a pending cost ticket (again: the ticket as it is)")
