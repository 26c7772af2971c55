"""The HTTP side of `kt`: KT_URL and KT_TOKEN, and one clear line instead of a traceback."""

import os
import sys

import httpx

# How `kt` identifies itself to the server: the one header every API reads to audit a change as
# made `via="cli"` (chargeback.auth.via_of).
CLIENT_HEADER = "X-KT-Client"
CLIENT_NAME = "kt/1"


class CliError(Exception):
    """Printed as one line on stderr; `kt` then exits non-zero."""


def base_url() -> str:
    return os.environ.get("KT_URL", "http://localhost:41002").rstrip("/")


def token() -> str:
    value = os.environ.get("KT_TOKEN", "")
    if not value:
        raise CliError("KT_TOKEN is not set: export KT_TOKEN=<admin token>")
    return value


def request(
    method: str, path: str, *, json=None, params=None, headers=None, stream_to=None
) -> httpx.Response:
    """Call the management API; raise CliError with the server's message on any failure."""
    url = f"{base_url()}{path}"
    all_headers = {
        "Authorization": f"Bearer {token()}",
        CLIENT_HEADER: CLIENT_NAME,
        **(headers or {}),
    }
    try:
        with httpx.Client(timeout=60) as client:
            if stream_to is not None:
                with client.stream(method, url, headers=all_headers, params=params) as response:
                    _raise_for_status(response, streamed=True)
                    for chunk in response.iter_bytes():
                        stream_to.write(chunk)
                    return response
            response = client.request(method, url, json=json, params=params, headers=all_headers)
    except httpx.ConnectError:
        raise CliError(f"cannot reach {base_url()} (is the server running? set KT_URL)") from None
    except httpx.InvalidURL:
        raise CliError(f"KT_URL is not a valid URL: {base_url()!r}") from None
    except httpx.HTTPError as exc:
        raise CliError(f"request to {url} failed: {exc}") from None
    _raise_for_status(response)
    return response


def _raise_for_status(response: httpx.Response, streamed: bool = False) -> None:
    if response.status_code < 400:
        return
    if streamed:
        response.read()
    try:
        message = _message(response.json())
    except ValueError:
        message = response.text.strip()[:200] or response.reason_phrase
    if response.status_code == 401:
        raise CliError(f"the server rejected KT_TOKEN ({message})")
    raise CliError(f"{response.status_code}: {message}")


def _message(body) -> str:
    """One line from an error body: DRF's `detail`, the gateway's `error.message`, or DRF
    field errors as `field: problem; other: problem`."""
    if not isinstance(body, dict):
        return str(body)
    if body.get("detail"):
        return str(body["detail"])
    if isinstance(body.get("error"), dict) and body["error"].get("message"):
        return str(body["error"]["message"])
    parts = []
    for field, problems in body.items():
        problems = problems if isinstance(problems, list) else [problems]
        text = " ".join(str(p) for p in problems)
        parts.append(text if field == "non_field_errors" else f"{field}: {text}")
    return "; ".join(parts)


def fail(message: str) -> int:
    print(f"kt: {message}", file=sys.stderr)
    return 1
