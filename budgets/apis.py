"""Budgets management API: thin views over selectors and services (admin token, one
organization; another organization's budget or department is a 404)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from budgets import selectors, services
from budgets.serializers import BudgetCreateInput, BudgetOutput, BudgetUpdateInput
from chargeback.auth import actor_of, via_of
from chargeback.openapi import conflict, error
from chargeback.pagination import LimitOffsetPage
from chargeback.serializers import DecimalJSONParser

DUPLICATE = conflict("the department already has a budget for that period")
NO_DEPARTMENT = error("no department with that `team_id` in the token's organization")


class BudgetListCreateApi(APIView):
    parser_classes = [DecimalJSONParser]  # amounts never pass through a float
    pagination_class = LimitOffsetPage

    @extend_schema(
        parameters=[OpenApiParameter("team_id", str, description="only this department's")],
        responses=BudgetOutput(many=True),
    )
    def get(self, request):
        budgets = selectors.budget_list(
            organization=request.organization, team_id=request.query_params.get("team_id", "")
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(budgets.prefetch_related("alerts"), request, view=self)
        # The page's spend in one grouped read per kind of period, not two reads per budget.
        statuses = selectors.budget_statuses(organization=request.organization, budgets=page)
        output = BudgetOutput(page, many=True, context={"statuses": statuses})
        return paginator.get_paginated_response(output.data)

    @extend_schema(
        request=BudgetCreateInput, responses={201: BudgetOutput, 404: NO_DEPARTMENT, 409: DUPLICATE}
    )
    def post(self, request):
        data = BudgetCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        budget = services.budget_create(
            organization=request.organization,
            actor=actor_of(request),
            via=via_of(request),
            **data.validated_data,
        )
        return Response(BudgetOutput(budget).data, status=status.HTTP_201_CREATED)


class BudgetDetailApi(APIView):
    parser_classes = [DecimalJSONParser]

    def _budget(self, request, budget_id):
        return selectors.budget_get(organization=request.organization, budget_id=budget_id)

    @extend_schema(responses=BudgetOutput)
    def get(self, request, budget_id: int):
        return Response(BudgetOutput(self._budget(request, budget_id)).data)

    @extend_schema(request=BudgetUpdateInput, responses=BudgetOutput)
    def patch(self, request, budget_id: int):
        budget = self._budget(request, budget_id)
        data = BudgetUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        budget = services.budget_update(
            budget=budget, actor=actor_of(request), via=via_of(request), **data.validated_data
        )
        return Response(BudgetOutput(budget).data)

    @extend_schema(responses={204: None})
    def delete(self, request, budget_id: int):
        services.budget_delete(
            budget=self._budget(request, budget_id), actor=actor_of(request), via=via_of(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
