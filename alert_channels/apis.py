"""The webhooks API: /v1/webhooks (Slack and signed HTTPS webhooks; admin token, one
organization; another organization's channel is a 404). Thin views over selectors and
services."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from alert_channels import selectors
from alert_channels.serializers import (
    ChannelCreatedOutput,
    ChannelCreateInput,
    ChannelOutput,
    DeliveryOutput,
    WebhookSecretOutput,
)
from alert_channels.services import channels as services
from alert_channels.services.deliveries import channel_test_send
from chargeback.auth import actor_of, via_of
from chargeback.openapi import conflict, error
from chargeback.pagination import LimitOffsetPage

DUPLICATE = conflict("the organization already has a channel of that name")
NOT_FOUND = error("no such webhook in the token's organization")


class WebhookListCreateApi(APIView):
    pagination_class = LimitOffsetPage

    @extend_schema(responses=ChannelOutput(many=True))
    def get(self, request):
        channels = selectors.channel_list(organization=request.organization)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(channels, request, view=self)
        return paginator.get_paginated_response(ChannelOutput(page, many=True).data)

    @extend_schema(
        request=ChannelCreateInput,
        responses={201: ChannelCreatedOutput, 404: NOT_FOUND, 409: DUPLICATE},
    )
    def post(self, request):
        data = ChannelCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        department = services.department_of(
            organization=request.organization, team_id=values.pop("team_id", None)
        )
        channel, secret = services.channel_create(
            organization=request.organization,
            department=department,
            actor=actor_of(request),
            via=via_of(request),
            **values,
        )
        channel.secret = secret
        return Response(ChannelCreatedOutput(channel).data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(APIView):
    def _channel(self, request, webhook_id):
        return selectors.channel_get(organization=request.organization, channel_id=webhook_id)

    @extend_schema(responses={200: ChannelOutput, 404: NOT_FOUND})
    def get(self, request, webhook_id: int):
        return Response(ChannelOutput(self._channel(request, webhook_id)).data)

    @extend_schema(responses={204: None, 404: NOT_FOUND})
    def delete(self, request, webhook_id: int):
        services.channel_delete(
            channel=self._channel(request, webhook_id),
            actor=actor_of(request),
            via=via_of(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestApi(APIView):
    @extend_schema(request=None, responses={202: DeliveryOutput, 404: NOT_FOUND})
    def post(self, request, webhook_id: int):
        channel = selectors.channel_get(organization=request.organization, channel_id=webhook_id)
        delivery = channel_test_send(channel=channel, actor=actor_of(request), via=via_of(request))
        delivery.refresh_from_db()
        return Response(DeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookRotateSecretApi(APIView):
    @extend_schema(request=None, responses={200: WebhookSecretOutput, 404: NOT_FOUND})
    def post(self, request, webhook_id: int):
        channel = selectors.channel_get(organization=request.organization, channel_id=webhook_id)
        secret = services.channel_secret_rotate(
            channel=channel, actor=actor_of(request), via=via_of(request)
        )
        return Response({"secret": secret})
