"""The operations endpoints, answered before any other middleware.

/healthz, /readyz and /metrics skip the whole stack: no ALLOWED_HOSTS check (a kubelet probes
the pod's address), no https redirect, no session, no rate limit, and nothing recorded about
them. Gateway refusals (402, 429) are counted here, on the way out, whatever raised them.
"""

from django.conf import settings
from django.http import HttpResponseNotAllowed

from observability import health


def _metrics(request):
    from observability.exposition import metrics_view

    return metrics_view(request)


ENDPOINTS = {"/healthz": health.healthz, "/readyz": health.readyz, "/metrics": _metrics}
REFUSALS = frozenset({402, 429})
# What runs each request inside its trace span, once tracing is set up (else nothing to import).
GATEWAY_WRAPPERS: list = []


class OpsEndpointsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.count_refusals = settings.KT_METRICS_ENABLED

    def __call__(self, request):
        endpoint = ENDPOINTS.get(request.path_info)
        if endpoint is not None:
            if request.method not in ("GET", "HEAD"):
                return HttpResponseNotAllowed(["GET", "HEAD"])
            return endpoint(request)
        if GATEWAY_WRAPPERS:  # traces on (observability/tracing.py)
            response = GATEWAY_WRAPPERS[0](request, self.get_response)
        else:
            response = self.get_response(request)
        if self.count_refusals and response.status_code in REFUSALS:
            from observability.metrics import refusal

            refusal(request.path_info, response.status_code)
        return response
