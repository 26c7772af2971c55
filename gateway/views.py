"""The gateway's HTTP endpoints: DRF views trimmed to what the hot path needs.

A view authenticates the consumer-group key (GroupKeyAuthentication), reads the raw body (no
parsers: the exact bytes are relayed upstream) and hands over to `gateway.proxy.Call`. No
content negotiation, permissions or throttles run per request (rate limits are the group's own,
gateway/ratelimit.py), and every error, DRF's and unexpected ones included, is answered in the
shape the caller's SDK expects (OpenAI's, Anthropic's on /v1/messages).
"""

import logging
import time

from django.conf import settings
from django.http import JsonResponse
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from gateway.auth import group_authenticate
from gateway.errors import GatewayError, database_unavailable, error_response
from gateway.proxy import Call, new_request_id
from gateway.recording import DATABASE_UNAVAILABLE
from gateway.routing import models_for
from gateway.validation import body_parse, body_validate

log = logging.getLogger(__name__)


class GroupKeyAuthentication(BaseAuthentication):
    """The consumer group's key (`Authorization: Bearer` or `x-api-key`); `request.auth` is its
    GroupContext. A missing or wrong key ends the request with 401 (GatewayError)."""

    def authenticate(self, request):
        return None, group_authenticate(request._request)

    def authenticate_header(self, request):
        return "Bearer"


class NoNegotiation(BaseContentNegotiation):
    """The gateway answers JSON or SSE whatever the client's Accept header says."""

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class GatewayView(APIView):
    authentication_classes = [GroupKeyAuthentication]
    permission_classes = []
    throttle_classes = []
    parser_classes = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = NoNegotiation
    schema = None  # OpenAI's and Anthropic's shapes, documented in docs/gateway.md
    anthropic = False  # answer errors in Anthropic's shape

    def wants_anthropic(self, request) -> bool:
        return self.anthropic

    def handle_exception(self, exc):
        anthropic = self.wants_anthropic(self.request)
        if isinstance(exc, GatewayError):
            error = exc
        elif isinstance(exc, DATABASE_UNAVAILABLE):
            # Only before the provider call: after it, the capture never raises this
            # (gateway/capture.py).
            log.warning("gateway request: database unavailable: %s", exc)
            error = database_unavailable()
        elif isinstance(exc, exceptions.APIException):
            error = GatewayError(exc.status_code, str(exc.detail), code=exc.default_code)
        else:
            log.exception("gateway request failed")
            error = GatewayError(
                500, "The gateway failed to handle the request.", type="server_error"
            )
        response = error_response(error, anthropic=anthropic)
        if getattr(self, "request_id", None):
            response["x-kt-request-id"] = self.request_id
        return response


class ProxyView(GatewayView):
    """POST an OpenAI- or Anthropic-shaped request; relayed to the group's target."""

    endpoint = ""

    def initial(self, request, *args, **kwargs):
        self.started = time.perf_counter()
        self.request_id = new_request_id()
        super().initial(request, *args, **kwargs)

    def post(self, request):
        raw, body = _read_body(request._request)
        body_validate(self.endpoint, body)
        call = Call(
            request=request._request,
            ctx=request.auth,
            endpoint=self.endpoint,
            body=body,
            raw=raw,
            request_id=self.request_id,
            started=self.started,
        )
        return call.run()


class ChatCompletionsView(ProxyView):
    endpoint = "chat"


class EmbeddingsView(ProxyView):
    endpoint = "embeddings"


class MessagesView(ProxyView):
    endpoint = "messages"
    anthropic = True


chat_completions = ChatCompletionsView.as_view()
embeddings = EmbeddingsView.as_view()
messages = MessagesView.as_view()


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413,
        f"Request body too large: the gateway accepts at most {limit} bytes.",
        code="request_too_large",
    )


def _read_body(request) -> tuple[bytes, dict]:
    """The body's bytes (at most KT_MAX_BODY_BYTES, else 413) and its JSON object (400 unless
    gateway.validation accepts it). A chunked body (no Content-Length) is read from the server's
    input stream, which ends at the last chunk. `request.kt_body_read` tells the middleware
    that nothing of the body is left on the connection (else it closes it)."""
    limit = settings.KT_MAX_BODY_BYTES
    meta = request.META
    length = meta.get("CONTENT_LENGTH")
    if length:
        try:
            declared = int(length)
        except ValueError:
            declared = 0
        if declared > limit:
            raise _too_large(limit)
        raw = request.read(limit + 1)
    elif "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        if not meta.get("wsgi.input_terminated"):
            # The server hands over the raw socket: reading it would wait for the client.
            raise GatewayError(411, "This server needs a Content-Length.", code="length_required")
        raw = meta["wsgi.input"].read(limit + 1)
    else:
        raw = b""
    if len(raw) > limit:
        raise _too_large(limit)
    request.kt_body_read = True
    return raw, body_parse(raw)


class ModelsView(GatewayView):
    """The models this consumer group may call (OpenAI shape; Anthropic's for its SDK)."""

    def wants_anthropic(self, request) -> bool:
        return "HTTP_ANTHROPIC_VERSION" in request.META

    def get(self, request, model_id: str | None = None):
        anthropic = self.wants_anthropic(request)
        found = models_for(request.auth)
        if model_id is not None:
            found = [m for m in found if m[0] == model_id]
            if not found:
                raise GatewayError(
                    404, f"The model `{model_id}` does not exist.", code="model_not_found"
                )
        if anthropic:
            data = [
                {
                    "type": "model",
                    "id": name,
                    "display_name": name,
                    "created_at": "2024-01-01T00:00:00Z",
                }
                for name, _provider in found
            ]
            if model_id is not None:
                return JsonResponse(data[0])
            return JsonResponse(
                {
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                }
            )
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": provider}
            for name, provider in found
        ]
        if model_id is not None:
            return JsonResponse(data[0])
        return JsonResponse({"object": "list", "data": data})


models = ModelsView.as_view()
