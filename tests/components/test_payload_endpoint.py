"""GET/HEAD /payloads/<sha256>/<filename>: what agents fetch, with ETag, ranges and 304."""

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from apps.components import services
from apps.components.models import ComponentVersion
from tests.components.conftest import EXAMPLE_PAYLOAD

pytestmark = pytest.mark.django_db

FILENAME = "8d82573a-926d-4754-9353-32dc29997f74.ta"


@pytest.fixture
def released(operator, example_component):
    return services.upload_binary(
        component=example_component,
        binary_file=ContentFile(EXAMPLE_PAYLOAD, name=FILENAME),
        version_label="1.0",
        sequence_number=1,
        release=True,
        actor=operator,
    )


def url(version, filename=FILENAME):
    return reverse("components:payload", args=[version.binary_sha256, filename])


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_released_payload_is_served_with_its_digest_as_strong_etag(client, released):
    response = client.get(url(released))
    assert response.status_code == 200
    assert body(response) == EXAMPLE_PAYLOAD
    assert response["ETag"] == f'"{released.binary_sha256}"'
    assert response["Content-Length"] == "20"
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Accept-Ranges"] == "bytes"
    assert released.payload_uri.endswith(url(released))


def test_head_gives_the_headers_without_the_body(client, released):
    response = client.head(url(released))
    assert response.status_code == 200
    assert response["Content-Length"] == "20"
    assert response["ETag"] == f'"{released.binary_sha256}"'
    assert body(response) == b""


@pytest.mark.parametrize(
    "range_header, content, content_range",
    [
        ("bytes=0-4", b"Hello", "bytes 0-4/20"),
        ("bytes=7-", b"Secure World!", "bytes 7-19/20"),
        ("bytes=-6", b"World!", "bytes 14-19/20"),
        ("bytes=-100", EXAMPLE_PAYLOAD, "bytes 0-19/20"),
        ("bytes=14-1000", b"World!", "bytes 14-19/20"),
        ("bytes=19-19", b"!", "bytes 19-19/20"),
    ],
)
def test_single_ranges_get_206(client, released, range_header, content, content_range):
    response = client.get(url(released), HTTP_RANGE=range_header)
    assert response.status_code == 206
    assert body(response) == content
    assert response["Content-Range"] == content_range
    assert response["Content-Length"] == str(len(content))
    assert response["ETag"] == f'"{released.binary_sha256}"'


@pytest.mark.parametrize("range_header", ["bytes=20-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_range_gets_416(client, released, range_header):
    response = client.get(url(released), HTTP_RANGE=range_header)
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */20"


@pytest.mark.parametrize("range_header", ["items=0-4", "bytes=0-4,6-8", "bytes=5-2", "bytes=x-"])
def test_range_we_do_not_serve_is_ignored(client, released, range_header):
    response = client.get(url(released), HTTP_RANGE=range_header)
    assert response.status_code == 200
    assert body(response) == EXAMPLE_PAYLOAD


def test_if_range_with_another_etag_gets_the_whole_payload(client, released):
    response = client.get(url(released), HTTP_RANGE="bytes=0-4", HTTP_IF_RANGE='"0000"')
    assert response.status_code == 200 and body(response) == EXAMPLE_PAYLOAD
    response = client.get(
        url(released), HTTP_RANGE="bytes=0-4", HTTP_IF_RANGE=f'"{released.binary_sha256}"'
    )
    assert response.status_code == 206 and body(response) == b"Hello"


@pytest.mark.parametrize("match", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
def test_if_none_match_gets_304(client, released, match):
    etag = f'"{released.binary_sha256}"'
    response = client.get(url(released), HTTP_IF_NONE_MATCH=match.format(etag=etag))
    assert response.status_code == 304
    assert response["ETag"] == etag
    assert body(response) == b""


def test_if_none_match_with_another_etag_gets_200(client, released):
    response = client.get(url(released), HTTP_IF_NONE_MATCH='"0123"')
    assert response.status_code == 200


def test_unknown_digest_or_filename_is_404(client, released):
    assert client.get(reverse("components:payload", args=["0" * 64, FILENAME])).status_code == 404
    assert client.get(url(released, "other.ta")).status_code == 404
    assert client.get(f"/payloads/{released.binary_sha256}/").status_code == 404
    assert client.get(f"/payloads/{released.binary_sha256[:10]}/{FILENAME}").status_code == 404


@pytest.mark.parametrize(
    "state",
    [
        ComponentVersion.State.DRAFT,
        ComponentVersion.State.WITHDRAWN,
        ComponentVersion.State.COMPROMISED,
    ],
)
def test_only_released_versions_are_served(client, released, state):
    ComponentVersion.objects.filter(pk=released.pk).update(state=state)
    assert client.get(url(released)).status_code == 404
    assert client.head(url(released)).status_code == 404


def test_a_digest_any_compromised_version_carries_is_never_served(client, operator, released):
    ComponentVersion.objects.filter(pk=released.pk).update(state=ComponentVersion.State.COMPROMISED)
    services.upload_binary(
        component=released.component,
        binary_file=ContentFile(EXAMPLE_PAYLOAD, name=FILENAME),
        version_label="1.1",
        sequence_number=2,
        release=True,
        actor=operator,
    )
    assert client.get(url(released)).status_code == 404


def test_integrated_payloads_are_not_served(client, operator, example_component):
    version = services.upload_binary(
        component=example_component,
        binary_file=ContentFile(EXAMPLE_PAYLOAD, name=FILENAME),
        version_label="1.0",
        sequence_number=1,
        delivery="integrated",
        release=True,
        actor=operator,
    )
    assert client.get(url(version)).status_code == 404


def test_only_get_and_head_are_allowed(client, released):
    response = client.post(url(released))
    assert response.status_code == 405
