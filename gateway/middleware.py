"""The gateway's hot endpoints skip the portal's middleware.

Calls to /v1/chat/completions, /v1/embeddings, /v1/messages and /v1/models authenticate by
consumer-group key and use none of what the portal's middleware provides (static files,
sessions, CSRF, the logged-in user, messages, clickjacking headers); running that stack and the
URL resolver cost about a sixth of a request's CPU (docs/performance.md). This middleware comes
first and hands those paths straight to their views; every other path goes down the stack.
What the gateway did get from the stack is kept here: the ALLOWED_HOSTS check and a JSON
reply's Content-Length.

A reply sent before the request's body was read (401 before the body, 413, 411) closes the
connection: the unread body is still on it, and gunicorn, which drains at most 64 KB of it,
would otherwise announce keep-alive, give up draining and drop the client's next request. WSGI
forbids an application's own `Connection` header, so the request's environ asks
portal/gunicorn_worker.py (CLOSE_CONNECTION), which sends `Connection: close` and closes.
Django's runserver drains whatever is left itself.
"""

from django.urls import resolve, reverse

HOT_ROUTES = ("gateway-chat", "gateway-embeddings", "gateway-messages", "gateway-models")
# The WSGI environ key that asks the server to close the connection after the reply
# (portal/gunicorn_worker.py honours it).
CLOSE_CONNECTION = "kt.close_connection"


class GatewayShortcutMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self._views = None

    def _hot_views(self) -> dict:
        if self._views is None:  # lazily: the URLconf is not loaded when middleware is built
            paths = (reverse(name) for name in HOT_ROUTES)
            self._views = {path: resolve(path).func for path in paths}
        return self._views

    def __call__(self, request):
        view = self._hot_views().get(request.path)
        if view is None:
            return self.get_response(request)
        request.get_host()  # ALLOWED_HOSTS holds here too (DisallowedHost: 400), as it did downstream
        response = view(request)
        if not response.streaming and not response.has_header("Content-Length"):
            # What CommonMiddleware would have added; without it the server sends chunked.
            response["Content-Length"] = str(len(response.content))
        if not getattr(request, "kt_body_read", False) and body_expected(request.META):
            request.META[CLOSE_CONNECTION] = True
        return response


def body_expected(meta) -> bool:
    """Whether the request announced a body (a Content-Length above 0, or chunked)."""
    length = meta.get("CONTENT_LENGTH")
    if length and length != "0":
        return True
    return "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
