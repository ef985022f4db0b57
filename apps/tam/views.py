"""TEEP over HTTP (draft-ietf-teep-otrp-over-http): HTTP only. Checks method, media type,
size and rate, passes the bytes to the TAM state machine, and maps its answer to the
status codes of DESIGN.md's table. The COSE signature authenticates the agent: no session,
no cookies, no DRF authentication."""

import logging

from django.conf import settings
from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.views import APIView

from apps.ops import metrics
from apps.ops.clientip import client_ip
from apps.ops.faults import BACKEND_RETRY_AFTER_SECONDS, unavailable_backend
from apps.tam import engine, request_body
from apps.teep.wire.numbering import CURRENT

logger = logging.getLogger(__name__)

TEEP_MEDIA_TYPE = "application/teep+cbor"


class TeepCborParser(BaseParser):
    """The media type a TEEP body must have (415 otherwise). The view reads the bytes itself
    (apps/tam/request_body.py: chunked bodies, the size limit); this parser only serves if
    something asks DRF for request.data: bytes in, bytes out, bounded."""

    media_type = TEEP_MEDIA_TYPE

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.TEEP_MAX_BODY_BYTES
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise request_body.BodyTooLarge()
        return data


class TeepCborRenderer(BaseRenderer):
    media_type = TEEP_MEDIA_TYPE
    format = "teep"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else b""


def _bare(status: int, **headers) -> HttpResponse:
    response = HttpResponse(status=status)
    del response["Content-Type"]
    for name, value in headers.items():
        response[name.replace("_", "-")] = str(value)
    return response


class TeepView(APIView):
    numbering = CURRENT
    parser_classes = [TeepCborParser]
    renderer_classes = [TeepCborRenderer]
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    # POST only (otrp-over-http 4): no OPTIONS either, and Allow says exactly that.
    http_method_names = ["post"]

    def post(self, request):
        body = request_body.read_body(
            request._request,
            limit=settings.TEEP_MAX_BODY_BYTES,
            discard_up_to=settings.TEEP_DISCARD_BODY_BYTES,
        )
        # An empty POST has no media type to check (DRF never parses one either).
        if body and request.negotiator.select_parser(request, request.parsers) is None:
            raise exceptions.UnsupportedMediaType(request.content_type)
        source_ip = client_ip(request)
        if body:
            answer = engine.process_teep_message(body, numbering=self.numbering, source_ip=source_ip)
        else:
            answer = engine.process_connect(numbering=self.numbering, source_ip=source_ip,
                                            endpoint=request.path_info)
        if answer.body is None:
            return _bare(204)
        response = HttpResponse(answer.body, status=200, content_type=TEEP_MEDIA_TYPE)
        # otrp-over-http 4: headers every response with content carries; no Cache-Control.
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'"
        response["Referrer-Policy"] = "no-referrer"
        return response

    def handle_exception(self, exc):
        response = self._answer_for(exc)
        # Exchanges the TAM answered are counted with their audit row; these wrote none.
        outcome = {429: "rate-limited", 503: "unavailable", 500: "error"}.get(
            response.status_code, "rejected"
        )
        metrics.count_exchange(message=self._message_kind(), outcome=outcome)
        return response

    def _answer_for(self, exc):
        if isinstance(exc, exceptions.MethodNotAllowed):
            return _bare(405, Allow="POST")
        if isinstance(exc, exceptions.UnsupportedMediaType):
            return _bare(415)
        if isinstance(exc, exceptions.NotAcceptable):
            return _bare(406)
        if isinstance(exc, request_body.BodyTooLarge):
            return _bare(413)
        if isinstance(exc, request_body.LengthRequired):
            logger.warning(
                "TEEP request with a chunked body on a server that does not decode it: 411"
                " (serve with gunicorn, README \"Serving older agents\")"
            )
            return _bare(411)
        if isinstance(exc, request_body.MalformedBody | exceptions.ParseError):
            logger.info("TEEP request body refused: %s", exc)
            return _bare(400)
        if isinstance(exc, engine.TamRateLimited):
            logger.warning("TEEP rate limit hit (%s)", exc.scope)
            return _bare(429, Retry_After=exc.retry_after)
        if isinstance(exc, engine.TamUnavailable):
            metrics.count_backend_unavailable(exc.backend)
            return _bare(503, Retry_After=exc.retry_after)
        # Only an unreachable backend is "retry later"; an IntegrityError or ProgrammingError
        # is a bug, and a 503 would make agents retry it forever (apps/ops/faults.py).
        backend = unavailable_backend(exc)
        if backend is not None:
            logger.error("TEEP request failed: %s unreachable: %s", backend, exc.__class__.__name__)
            metrics.count_backend_unavailable(backend)
            return _bare(503, Retry_After=BACKEND_RETRY_AFTER_SECONDS)
        logger.exception("TEEP request failed unexpectedly")
        return _bare(500)

    def _message_kind(self) -> str:
        """"connect" for an empty POST; the type of a message is not known at this point."""
        if self.request is None or request_body.is_chunked(self.request.META):
            return "other"
        declared = self.request.META.get("CONTENT_LENGTH")
        return "connect" if not declared or declared == "0" else "other"
