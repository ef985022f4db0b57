"""HTTP for the TEEP Agent: the TEEP/HTTP client POST (otrp-over-http 5) and payload fetch.

Plain urllib, no Django. otrp-over-http 4: redirects MUST NOT be followed automatically and
cookies are not used; urllib without an HTTPCookieProcessor sends none.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

TEEP_MEDIA_TYPE = "application/teep+cbor"
DEFAULT_TIMEOUT = 30.0
MAX_TEEP_MESSAGE = 16 * 1024 * 1024
DEFAULT_MAX_PAYLOAD = 64 * 1024 * 1024
_CHUNK = 64 * 1024


class TransportError(Exception):
    """The TAM could not be reached, or answered something other than 200 / 204."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class FetchError(Exception):
    """A payload could not be fetched (SUIT directive-fetch)."""


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    content_type: str
    latency: float  # seconds, request sent to body read


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx status


_opener = urllib.request.build_opener(_NoRedirect)


def post_teep(
    uri: str,
    body: bytes,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    chunked: bool = False,
    host: str | None = None,
) -> HttpAnswer:
    """POST one TEEP message (or an empty body) to the TAM URI (otrp-over-http 5.1, 5.3).

    200 and 204 come back as HttpAnswer; any other status, or no answer at all, raises
    TransportError (with Retry-After, in seconds, when the TAM sent one: 429 and 503).
    `chunked` sends the body with Transfer-Encoding: chunked and no Content-Length, `host` a
    fixed Host header: what some agents in the field do (agent.Behaviour).
    """
    if not uri.lower().startswith(("http://", "https://")):
        raise TransportError(f"the TAM URI must be an http:// or https:// URL, not {uri!r}")
    headers = {"Accept": TEEP_MEDIA_TYPE, "Content-Type": TEEP_MEDIA_TYPE}
    if host is not None:
        headers["Host"] = host  # urllib then leaves the URI's host out of the header
    request = urllib.request.Request(
        uri,
        # An iterable without a Content-Length makes urllib send Transfer-Encoding: chunked
        # (one chunk, or none for an empty body, then the last-chunk).
        data=iter([body] if body else []) if chunked else body,
        method="POST",
        headers=headers,
    )
    started = time.monotonic()
    try:
        with _opener.open(request, timeout=timeout) as response:
            data = response.read(MAX_TEEP_MESSAGE + 1)
            status = response.status
            content_type = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
        exc.close()
        detail = f"; retry after {retry_after} s" if retry_after is not None else ""
        raise TransportError(
            f"TAM answered HTTP {exc.code} {exc.reason}{detail}",
            status=exc.code,
            retry_after=retry_after,
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransportError(f"cannot reach the TAM at {uri}: {reason}") from None
    latency = time.monotonic() - started
    if len(data) > MAX_TEEP_MESSAGE:
        raise TransportError(f"TAM answer larger than {MAX_TEEP_MESSAGE} bytes", status=status)
    if status not in (200, 204):
        raise TransportError(f"TAM answered HTTP {status}", status=status)
    if data and not content_type.split(";")[0].strip().lower() == TEEP_MEDIA_TYPE:
        raise TransportError(
            f"TAM answered HTTP {status} with Content-Type {content_type or 'none'},"
            f" not {TEEP_MEDIA_TYPE}",
            status=status,
        )
    return HttpAnswer(status, data, content_type, latency)


def _retry_after(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return max(0, int(value.strip()))
    except ValueError:
        # An HTTP-date is allowed too (RFC 9110 10.2.3).
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0, int(when.timestamp() - time.time()))


def fetch_payload(
    uri: str,
    partial: Path,
    *,
    expected_size: int | None = None,
    max_size: int = DEFAULT_MAX_PAYLOAD,
    timeout: float = DEFAULT_TIMEOUT,
) -> bytes:
    """GET a payload (SUIT directive-fetch), resuming a partial download with Range.

    The bytes collected so far live in `partial`; an interrupted transfer keeps them, so the
    next attempt asks only for the rest (RFC 9110 14.2). A server that ignores Range (200)
    restarts the file. The caller checks the digest; the partial file is gone on return.
    """
    limit = expected_size if expected_size is not None else max_size
    if limit > max_size:
        raise FetchError(f"payload of {limit} bytes exceeds the agent's limit of {max_size}")
    have = partial.stat().st_size if partial.exists() else 0
    if have > limit:
        partial.unlink()
        have = 0
    if expected_size is not None and have == expected_size:
        data = partial.read_bytes()
        partial.unlink()
        return data
    headers = {"Range": f"bytes={have}-"} if have else {}
    request = urllib.request.Request(uri, headers=headers, method="GET")
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _opener.open(request, timeout=timeout) as response:
            mode = "ab" if have and response.status == 206 else "wb"
            written = have if mode == "ab" else 0
            with open(partial, mode) as out:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    written += len(chunk)
                    if written > limit:
                        out.close()
                        partial.unlink(missing_ok=True)
                        raise FetchError(f"{uri}: payload larger than {limit} bytes")
                    out.write(chunk)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:  # our partial file is no prefix of this resource
            partial.unlink(missing_ok=True)
        raise FetchError(f"GET {uri}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FetchError(f"GET {uri}: {getattr(exc, 'reason', exc)}") from None
    data = partial.read_bytes()
    partial.unlink(missing_ok=True)
    return data
