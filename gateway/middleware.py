"""The gateway's hot endpoints skip the portal's middleware.

Calls to /v1/chat/completions, /v1/embeddings, /v1/messages and /v1/models authenticate by
consumer-group key and use none of what the portal's middleware provides (static files,
sessions, CSRF, the logged-in user, messages, clickjacking headers); running that stack and the
URL resolver cost about a sixth of a request's CPU (docs/performance.md). This middleware comes
first and hands those paths straight to their views; every other path goes down the stack.
What the gateway did get from the stack is kept here: the ALLOWED_HOSTS check and a JSON
reply's Content-Length.
"""

from django.urls import resolve, reverse

HOT_ROUTES = ("gateway-chat", "gateway-embeddings", "gateway-messages", "gateway-models")


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
        return response
