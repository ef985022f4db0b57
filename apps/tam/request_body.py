"""The bytes of a TEEP request, whatever their HTTP/1.1 framing: Content-Length, or
Transfer-Encoding: chunked (RFC 9112 7.1), under one size limit (TEEP_MAX_BODY_BYTES).

Who decodes a chunked body: not Django. WSGIRequest (and DRF after it) reads only as many bytes
as CONTENT_LENGTH says, so without one a chunked message used to read as an empty POST, and the
agent got a fresh QueryRequest forever. So:
- gunicorn (production, README "Deployment") decodes the chunks itself and says so with
  `wsgi.input_terminated`: wsgi.input ends where the body ends. Read it to its end.
- nginx in front (proxy_request_buffering on) reads the whole body and passes Content-Length:
  gunicorn sees no chunked body at all.
- Django's development server (runserver: the embedded default; live_server in the tests) is
  wsgiref, which decodes nothing and hands the application LimitedStream(socket file,
  CONTENT_LENGTH or 0) (django/core/servers/basehttp.py, ServerHandler): nothing can be read
  through it without a Content-Length, so the chunks are decoded here from the socket file
  under it.
- any other server that does neither: 411 Length Required (RFC 9110 15.5.12), never an
  empty POST.

Too large: 413. The body is read and thrown away up to TEEP_DISCARD_BODY_BYTES first, so a
client that writes its whole body before reading the answer sees the 413 (gunicorn closes a
connection with unread input after draining at most 64 KiB, and the client's next write fails
with a broken pipe). A body announced or sent beyond that bound is not read further: the 413
goes out at once and the connection may be reset.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.handlers.wsgi import LimitedStream

READ_SIZE = 64 * 1024
# RFC 9112 7.1: chunk-size [chunk-ext] CRLF. Extensions are ignored; a line this long is abuse.
MAX_CHUNK_LINE = 1024
MAX_TRAILER_LINES = 32


class BodyTooLarge(Exception):
    """413 Content Too Large."""


class LengthRequired(Exception):
    """411: a chunked body this server neither decodes nor lets us read."""


class MalformedBody(Exception):
    """400: framing that cannot be a request body (both Content-Length and chunked, bad chunks,
    a body that ends before its length)."""


def is_chunked(meta) -> bool:
    codings = meta.get("HTTP_TRANSFER_ENCODING", "")
    return "chunked" in (coding.strip().lower() for coding in codings.split(","))


def read_body(request, *, limit: int, discard_up_to: int) -> bytes:
    """The body of a Django HttpRequest, at most `limit` bytes (else BodyTooLarge, after
    discarding the body when it ends within `discard_up_to` bytes)."""
    try:
        return _read_body(request, limit, discard_up_to)
    except OSError as exc:  # the client went away inside the body (gunicorn: NoMoreData)
        raise MalformedBody(f"the body could not be read: {exc.__class__.__name__}") from exc


def _read_body(request, limit: int, discard_up_to: int) -> bytes:
    meta = request.META
    declared = meta.get("CONTENT_LENGTH") or ""  # wsgiref sets "" when the header is absent
    if is_chunked(meta):
        if declared:
            # RFC 9112 6.1: a server MAY reject both; gunicorn does too.
            raise MalformedBody("both Content-Length and Transfer-Encoding: chunked")
        return _bounded(_chunked_reader(meta), limit, discard_up_to)
    if not declared:
        return b""
    if not declared.isdigit():
        raise MalformedBody(f"Content-Length {declared[:20]!r}")
    length = int(declared)
    if length > limit:
        if length <= discard_up_to:
            _discard(request.read, length)
        raise BodyTooLarge()
    data = request.read(length)
    if len(data) < length:
        raise MalformedBody("the body ended before its Content-Length")
    return data


def _bounded(read: Callable[[int], bytes], limit: int, discard_up_to: int) -> bytes:
    data = _read_up_to(read, limit + 1)
    if len(data) > limit:
        _discard(read, discard_up_to - len(data))
        raise BodyTooLarge()
    return data


def _read_up_to(read: Callable[[int], bytes], size: int) -> bytes:
    parts, have = [], 0
    while have < size:
        part = read(min(READ_SIZE, size - have))
        if not part:
            break
        parts.append(part)
        have += len(part)
    return b"".join(parts)


def _discard(read: Callable[[int], bytes], budget: int) -> None:
    while budget > 0:
        part = read(min(READ_SIZE, budget))
        if not part:
            return
        budget -= len(part)


def _chunked_reader(meta) -> Callable[[int], bytes]:
    wsgi_input = meta["wsgi.input"]
    if meta.get("wsgi.input_terminated"):
        return _decoded_by_the_server(wsgi_input.read)
    raw = _development_server_socket_file(wsgi_input)
    if raw is None:
        raise LengthRequired()
    return ChunkedDecoder(raw).read


def _decoded_by_the_server(read: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """gunicorn decodes the chunks as they are read and raises its own exceptions (its
    InvalidChunkSize, ChunkMissingTerminator... are no OSErrors) for broken ones: client input."""

    def guarded(size: int) -> bytes:
        try:
            return read(size)
        except Exception as exc:
            raise MalformedBody(f"the server refused the chunks: {exc.__class__.__name__}") from exc

    return guarded


def _development_server_socket_file(wsgi_input):
    """The socket file under Django's development server's LimitedStream of 0 bytes (see the
    module's docstring), or None on any other server."""
    if not isinstance(wsgi_input, LimitedStream) or wsgi_input.limit != 0:
        return None
    raw = getattr(getattr(wsgi_input, "_read", None), "__self__", None)
    return raw if hasattr(raw, "readline") else None


class ChunkedDecoder:
    """Decodes a chunked body from a binary stream (RFC 9112 7.1): read(n) returns up to n
    bytes of content, b"" after the last chunk and its trailer section (both consumed, so a
    kept-alive connection stays in step). Extensions and trailer fields are ignored."""

    def __init__(self, stream):
        self.stream = stream
        self.left_in_chunk = 0
        self.done = False

    def read(self, size: int) -> bytes:
        if self.done:
            return b""
        if self.left_in_chunk == 0:
            self.left_in_chunk = self._chunk_size()
            if self.left_in_chunk == 0:
                self._skip_trailer_section()
                self.done = True
                return b""
        data = self.stream.read(min(size, self.left_in_chunk))
        if not data:
            raise MalformedBody("the connection closed inside a chunk")
        self.left_in_chunk -= len(data)
        if self.left_in_chunk == 0 and self.stream.read(2) != b"\r\n":
            raise MalformedBody("a chunk is not followed by CRLF")
        return data

    def _chunk_size(self) -> int:
        line = self._line()
        size = line.split(b";", 1)[0].strip()
        if not size or any(c not in b"0123456789abcdefABCDEF" for c in size):
            raise MalformedBody(f"chunk size {line[:20]!r}")
        return int(size, 16)

    def _skip_trailer_section(self) -> None:
        for _ in range(MAX_TRAILER_LINES):
            if not self._line():
                return
        raise MalformedBody("too many trailer fields")

    def _line(self) -> bytes:
        line = self.stream.readline(MAX_CHUNK_LINE + 1)
        if not line.endswith(b"\n"):
            raise MalformedBody("a chunk line is too long or the connection closed")
        return line.rstrip(b"\r\n")
