"""Reading a TEEP request body whatever its framing (apps/tam/request_body.py): chunked bodies
on Django's development server (the embedded default; live_server here), 411 where a server
neither decodes nor exposes them, 400 for broken framing, 413 past the limit. gunicorn's side
is in test_field_agents_over_gunicorn.py."""

import io
import socket
from urllib.parse import urlsplit

import pytest
from django.core.files.base import ContentFile

from apps.agent.agent import Behaviour, TeepAgent
from apps.audit.models import AuditEvent
from apps.components import services as catalogue
from apps.devices.models import InstalledComponent
from apps.devices.services import register_agent
from apps.tam.request_body import ChunkedDecoder, MalformedBody
from apps.teep.tam_keys import tam_keys
from apps.teep.wire.numbering import PRE_26

from .conftest import TA_COMPONENT_ID

TEEP = "application/teep+cbor"


# --- the decoder ---------------------------------------------------------------------------


def decode(wire: bytes, size: int = 3) -> bytes:
    decoder, parts = ChunkedDecoder(io.BytesIO(wire)), []
    while part := decoder.read(size):
        parts.append(part)
    return b"".join(parts)


def test_chunks_with_extensions_and_trailers_decode_to_the_body_and_are_consumed():
    stream = io.BytesIO(b"4;name=value\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Checksum: 1\r\n\r\nNEXT")
    decoder, parts = ChunkedDecoder(stream), []
    while part := decoder.read(64):
        parts.append(part)
    assert b"".join(parts) == b"Wikipedia"
    assert stream.read() == b"NEXT"  # the next request on a kept-alive connection


@pytest.mark.parametrize(
    "wire",
    [
        b"zz\r\nabc\r\n0\r\n\r\n",  # not a hexadecimal size
        b"\r\n",  # no size
        b"3\r\nabcX\r\n0\r\n\r\n",  # a chunk longer than its size
        b"5\r\nabc",  # the connection closed inside a chunk
        b"1" * 2000 + b"\r\n",  # an endless size line
        b"0\r\n" + b"X: y\r\n" * 100 + b"\r\n",  # endless trailers
    ],
)
def test_broken_chunk_framing_is_refused(wire):
    with pytest.raises(MalformedBody):
        decode(wire)


# --- the TEEP view, through Django's test client --------------------------------------------


@pytest.mark.django_db
def test_chunked_body_on_a_server_that_cannot_be_read_gets_411(client):
    # The test client's input is neither decoded by a server (wsgi.input_terminated) nor the
    # development server's socket file: as under a WSGI server we do not know.
    response = client.generic(
        "POST",
        "/tam",
        b"\xa0",
        content_type=TEEP,
        HTTP_ACCEPT=TEEP,
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )
    assert response.status_code == 411
    assert response.content == b""


@pytest.mark.django_db
def test_content_length_and_chunked_together_get_400(client):
    response = client.generic(
        "POST",
        "/tam",
        b"\xa0",
        content_type=TEEP,
        HTTP_ACCEPT=TEEP,
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert response.status_code == 400
    assert not AuditEvent.objects.exists()


# --- Django's development server (live_server), as the embedded default serves --------------


def raw_post(base_url: str, path: str, head: bytes, body: bytes) -> int:
    """Send exactly these header lines and body bytes; the status of the answer."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {address.hostname}\r\nContent-Type: {TEEP}\r\n".encode()
            + head
            + b"Connection: close\r\n\r\n"
            + body
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.django_db(transaction=True)
def test_agent_sending_chunked_bodies_installs_then_removes_on_the_development_server(
    tmp_path, live_server, settings
):
    settings.TAM_PUBLIC_BASE_URL = live_server.url
    component = catalogue.create_component(
        name="hello-ta", component_id=TA_COMPONENT_ID, actor=None
    )
    catalogue.upload_binary(
        component=component,
        binary_file=ContentFile(b"Hello, Secure World!", name="hello.ta"),
        version_label="1.0",
        sequence_number=1,
        actor=None,
        release=True,
    )
    agent = TeepAgent(tmp_path / "agent", numbering=PRE_26, behaviour=Behaviour(chunked_body=True))
    for key in tam_keys().public_keys:
        agent.add_tam_key(key)
    register_agent(public_key_bytes=agent.public_key_path.read_bytes(), name="chunked")
    tam_uri = f"{live_server.url}/tam/draft-25"

    agent.request_ta(TA_COMPONENT_ID)
    result = agent.request_policy_check(tam_uri)
    assert result.ok, result.to_json()
    assert result.messages[:2] == [("empty", "query-request"), ("query-response", "update")]
    assert InstalledComponent.objects.filter(device__kid=agent.kid.hex()).exists()
    agent.unrequest_ta(TA_COMPONENT_ID)
    assert agent.request_policy_check(tam_uri).ok
    assert agent.installed_components() == []
    assert not InstalledComponent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_oversize_and_broken_chunked_bodies_on_the_development_server(live_server, settings):
    settings.TEEP_MAX_BODY_BYTES = 1024
    settings.TEEP_DISCARD_BODY_BYTES = 8 * 1024
    chunked = b"Transfer-Encoding: chunked\r\n"
    oversize = b"".join(b"400\r\n" + b"\0" * 1024 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"
    assert raw_post(live_server.url, "/tam", chunked, oversize) == 413
    assert raw_post(live_server.url, "/tam", chunked, b"zz\r\n\xa0\r\n0\r\n\r\n") == 400
    assert raw_post(live_server.url, "/tam", chunked, b"0\r\n\r\n") == 200  # an empty POST
