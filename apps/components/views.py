"""The payload endpoint: where agents fetch the TA binaries named by the TAM's manifests.

GET/HEAD /payloads/<sha256>/<filename>. Content-addressed: the URL carries the SHA-256 the
manifest's image-digest names, which is also the strong ETag. No authentication (agents fetch
it during SUIT processing, TEEP Appendix E Example 1); the binary is not secret, the manifest
that names it is signed. Only payloads of *released* versions delivered by URI are served:
drafts are not yet meant for devices, withdrawn and compromised versions no longer are, and
a digest that any compromised version carries is never served (404 for all of these, so the
endpoint does not reveal what the catalogue holds).
"""

import re

from django.core.files.storage import default_storage
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_safe

from apps.components.models import ComponentVersion

_CHUNK = 1 << 16
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@require_safe
def payload(request, digest: str, filename: str):
    version = _servable_version(digest.lower(), filename)
    size = version.binary_size
    etag = f'"{version.binary_sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        # Same URL, same bytes, but the TAM may stop serving it (withdrawal, compromise):
        # caches revalidate, which costs a 304.
        "Cache-Control": "no-cache",
        "Content-Disposition": f'attachment; filename="{version.binary_filename}"',
    }
    if _etag_matches(request.headers.get("If-None-Match"), etag, weak=True):
        return _response(304, headers)

    byte_range = None
    range_header = request.headers.get("Range")
    if range_header and _if_range_allows(request.headers.get("If-Range"), etag):
        byte_range = _parse_range(range_header, size)
        if byte_range == "unsatisfiable":
            return _response(416, {**headers, "Content-Range": f"bytes */{size}"})

    if byte_range is None:
        status, start, length = 200, 0, size
    else:
        start, end = byte_range
        status, length = 206, end - start + 1
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(length)

    if request.method == "HEAD":
        response = _response(status, headers)
    else:
        response = StreamingHttpResponse(_read(version.binary.name, start, length), status=status)
        for name, value in headers.items():
            response[name] = value
    response["Content-Type"] = "application/octet-stream"
    return response


def _servable_version(digest: str, filename: str) -> ComponentVersion:
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise Http404
    if ComponentVersion.objects.filter(
        binary_sha256=digest, state=ComponentVersion.State.COMPROMISED
    ).exists():
        raise Http404
    version = (
        ComponentVersion.objects.servable()
        .filter(binary_sha256=digest, binary_filename=filename)
        .order_by("-sequence_number")
        .first()
    )
    if version is None or version.binary_size is None:
        raise Http404
    return version


def _read(name: str, start: int, length: int):
    with default_storage.open(name, "rb") as handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk


def _response(status: int, headers: dict) -> HttpResponse:
    response = HttpResponse(status=status)
    for name, value in headers.items():
        response[name] = value
    if status in (304,):
        del response["Content-Type"]
    return response


def _etag_matches(header: str | None, etag: str, weak: bool) -> bool:
    """RFC 9110 13.1.2: If-None-Match uses weak comparison, '*' matches any current entity."""
    if not header:
        return False
    for candidate in (part.strip() for part in header.split(",")):
        if candidate == "*":
            return True
        if weak and candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


def _if_range_allows(header: str | None, etag: str) -> bool:
    """RFC 9110 13.1.5: a Range applies only if If-Range (when sent) strongly matches."""
    if header is None:
        return True
    return header.strip() == etag


def _parse_range(header: str, size: int):
    """(first, last) for one satisfiable range, "unsatisfiable", or None to ignore the header.

    One range only: a multi-range request gets the whole payload (RFC 9110 14.2 allows
    ignoring Range), as does anything we cannot parse.
    """
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    start = int(first)
    if last != "" and int(last) < start:
        return None  # invalid range-spec: ignored
    if start >= size:
        return "unsatisfiable"
    end = size - 1 if last == "" else min(int(last), size - 1)
    return start, end
