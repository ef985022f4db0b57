"""TEEP over HTTP (draft-ietf-teep-otrp-over-http): HTTP only. Checks method, media type,
size and rate, passes the bytes to the TAM state machine, and maps its answer to the
status codes of DESIGN.md's table. The COSE signature authenticates the agent: no session,
no cookies, no DRF authentication."""

import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.views import APIView

from apps.tam import engine
from apps.teep.wire.numbering import CURRENT

logger = logging.getLogger(__name__)

TEEP_MEDIA_TYPE = "application/teep+cbor"
BACKEND_RETRY_AFTER_SECONDS = 30


class BodyTooLarge(exceptions.APIException):
    status_code = 413


class TeepCborParser(BaseParser):
    """Bytes in, bytes out: the wire package decodes and the signature needs the exact bytes."""

    media_type = TEEP_MEDIA_TYPE

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.TEEP_MAX_BODY_BYTES
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise BodyTooLarge()
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
        declared = request.META.get("CONTENT_LENGTH")
        if declared and declared.isdigit() and int(declared) > settings.TEEP_MAX_BODY_BYTES:
            raise BodyTooLarge()
        body = request.data if isinstance(request.data, bytes) else b""
        source_ip = request.META.get("REMOTE_ADDR")
        if body:
            answer = engine.process_teep_message(body, numbering=self.numbering, source_ip=source_ip)
        else:
            answer = engine.process_connect(numbering=self.numbering, source_ip=source_ip)
        if answer.body is None:
            return _bare(204)
        response = HttpResponse(answer.body, status=200, content_type=TEEP_MEDIA_TYPE)
        # otrp-over-http 4: headers every response with content carries; no Cache-Control.
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'"
        response["Referrer-Policy"] = "no-referrer"
        return response

    def handle_exception(self, exc):
        if isinstance(exc, exceptions.MethodNotAllowed):
            return _bare(405, Allow="POST")
        if isinstance(exc, exceptions.UnsupportedMediaType):
            return _bare(415)
        if isinstance(exc, exceptions.NotAcceptable):
            return _bare(406)
        if isinstance(exc, BodyTooLarge):
            return _bare(413)
        if isinstance(exc, exceptions.ParseError):
            return _bare(400)
        if isinstance(exc, engine.TamRateLimited):
            logger.warning("TEEP rate limit hit (%s)", exc.scope)
            return _bare(429, Retry_After=exc.retry_after)
        if isinstance(exc, engine.TamUnavailable):
            return _bare(503, Retry_After=exc.retry_after)
        if isinstance(exc, DatabaseError):
            logger.error("TEEP request failed: database unavailable: %s", exc.__class__.__name__)
            return _bare(503, Retry_After=BACKEND_RETRY_AFTER_SECONDS)
        logger.exception("TEEP request failed unexpectedly")
        return _bare(500)
