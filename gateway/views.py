"""The gateway's HTTP endpoints. Plain Django views (no DRF per-request machinery): the hot path
is authenticate, read the body, hand over to `gateway.proxy.Call`."""

import json
import time

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from gateway.auth import group_authenticate
from gateway.errors import GatewayError, bad_request, error_response
from gateway.proxy import Call, new_request_id
from gateway.routing import models_for

REQUIRED = {"chat": "messages", "messages": "messages", "embeddings": "input"}


def _read_body(request) -> tuple[bytes, dict]:
    limit = settings.KT_MAX_BODY_BYTES
    too_large = GatewayError(
        413,
        f"Request body too large: the gateway accepts at most {limit} bytes.",
        code="request_too_large",
    )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise too_large
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request(
            "We could not parse the JSON body of your request.", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    return raw, body


def _validate(endpoint: str, body: dict):
    field = REQUIRED[endpoint]
    value = body.get(field)
    if endpoint == "embeddings":
        ok = isinstance(value, str | list) and bool(value)
    else:
        ok = isinstance(value, list) and bool(value)
    if not ok:
        raise bad_request(
            f"'{field}' is a required property.", code="missing_required_parameter", param=field
        )
    for name in ("max_tokens", "max_completion_tokens", "n"):
        cap = body.get(name)
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise bad_request(
                f"'{name}' must be a positive integer.", code="invalid_value", param=name
            )
    if "stream" in body and not isinstance(body["stream"], bool):
        raise bad_request("'stream' must be a boolean.", code="invalid_type", param="stream")


def _proxy(request, endpoint: str):
    started = time.perf_counter()
    request_id = new_request_id()
    anthropic = endpoint == "messages"
    try:
        if request.method != "POST":
            raise GatewayError(405, "Use POST.", code="method_not_allowed")
        ctx = group_authenticate(request)
        raw, body = _read_body(request)
        _validate(endpoint, body)
        call = Call(
            request=request,
            ctx=ctx,
            endpoint=endpoint,
            body=body,
            raw=raw,
            request_id=request_id,
            started=started,
        )
        return call.run()
    except GatewayError as error:
        response = error_response(error, anthropic=anthropic)
        response["x-kt-request-id"] = request_id
        return response


@csrf_exempt
def chat_completions(request):
    return _proxy(request, "chat")


@csrf_exempt
def embeddings(request):
    return _proxy(request, "embeddings")


@csrf_exempt
def messages(request):
    return _proxy(request, "messages")


def _wants_anthropic(request) -> bool:
    return "HTTP_ANTHROPIC_VERSION" in request.META


@csrf_exempt
def models(request, model_id: str | None = None):
    """The models this consumer group may call (OpenAI shape; Anthropic's for its SDK)."""
    anthropic = _wants_anthropic(request)
    try:
        if request.method != "GET":
            raise GatewayError(405, "Use GET.", code="method_not_allowed")
        ctx = group_authenticate(request)
    except GatewayError as error:
        return error_response(error, anthropic=anthropic)
    found = models_for(ctx)
    if model_id is not None:
        found = [m for m in found if m[0] == model_id]
        if not found:
            error = GatewayError(
                404, f"The model `{model_id}` does not exist.", code="model_not_found"
            )
            return error_response(error, anthropic=anthropic)
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
