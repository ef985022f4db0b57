"""request_policy_check over real HTTP against a stub TAM on 127.0.0.1 (otrp-over-http 5)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.agent import transport
from apps.agent.agent import PolicyCheckError, raise_for_error
from apps.teep.wire import cose, messages
from apps.teep.wire.component_ids import component_id_text
from apps.teep.wire.suit import parse_report

from .fake_tam import COMPONENT

PAYLOAD = bytes(range(256)) * 40  # 10 KiB


class StubTam:
    """Plays the TAM: QueryRequest for an empty POST, an Update for the QueryResponse, 204 for
    the Success; serves the payload with Range support. `script` overrides answers."""

    def __init__(self, tam, payload=PAYLOAD, manifest_payload=None):
        self.tam = tam
        self.payload = payload
        self.manifest_payload = manifest_payload or payload  # what the manifest's digest names
        self.agent_key = None
        self.received = []  # (content-type, accept, message or None)
        self.range_headers = []
        self.status_override = None  # (status, headers) for every POST
        self.tokens = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if stub.status_override:
                    status, headers = stub.status_override
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = stub.answer(body, self.headers)
                if answer is None:
                    self.send_response(204)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/teep+cbor")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_GET(self):
                data = stub.payload
                start = 0
                header = self.headers.get("Range")
                stub.range_headers.append(header)
                if header:
                    start = int(header.split("=")[1].rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.server.server_port}"

    def answer(self, body, headers):
        content_type, accept = headers.get("Content-Type"), headers.get("Accept")
        tam = self.tam
        if not body:
            self.received.append((content_type, accept, None))
            token = tam.token()
            self.tokens.append(token)
            return tam.query_request(token=token)
        message = messages.decode(cose.verify(body, self.agent_key), tam.numbering)
        self.received.append((content_type, accept, message))
        if isinstance(message, messages.QueryResponse):
            token = tam.token()
            self.tokens.append(token)
            envelope = tam.envelope(self.manifest_payload, uri=f"{self.base}/payload/ta.bin")
            return tam.update(token=token, manifests=[envelope])
        return None

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_request_policy_check_end_to_end_with_payload_fetch(agent, tam):
    with StubTam(tam) as stub:
        stub.agent_key = agent.key.public()
        result = agent.request_policy_check(f"{stub.base}/tam")

    assert result.ok, result.error
    assert result.messages == [
        ("empty", "query-request"),
        ("query-response", "update"),
        ("success", None),
    ]
    assert result.http_statuses == [200, 200, 204]
    assert result.installed == [component_id_text(COMPONENT)]
    assert all(e.latency >= 0 for e in result.exchanges)
    media = "application/teep+cbor"
    assert [(ct, accept) for ct, accept, _ in stub.received] == [(media, media)] * 3
    success = stub.received[-1][2]
    assert isinstance(success, messages.Success) and success.token == stub.tokens[1]
    assert parse_report(success.suit_reports[0], key=agent.report_key).nonce == stub.tokens[1]
    (component,) = agent.installed_components()
    assert component.read_payload() == PAYLOAD
    assert result.to_json()["installed"] == result.installed


def test_fetched_payload_with_wrong_digest_is_not_installed(agent, tam):
    with StubTam(tam, manifest_payload=PAYLOAD + b"!") as stub:
        stub.agent_key = agent.key.public()
        result = agent.request_policy_check(f"{stub.base}/tam")

    assert result.ok  # the exchange completed: the TAM got an Error
    assert result.messages[-1] == ("error", None)
    error = stub.received[-1][2]
    assert error.err_code == tam.numbering.err_code("ERR_MANIFEST_PROCESSING_FAILED")
    assert parse_report(error.suit_reports[0]).nonce == stub.tokens[1]
    assert agent.installed_components() == []
    assert result.failures


@pytest.mark.parametrize("status", [503, 429])
def test_busy_tam_exposes_retry_after(agent, tam, status):
    with StubTam(tam) as stub:
        stub.status_override = (status, {"Retry-After": "17"})
        result = agent.request_policy_check(f"{stub.base}/tam")
    assert not result.ok
    assert (result.http_status, result.retry_after) == (status, 17)
    with pytest.raises(PolicyCheckError) as caught:
        raise_for_error(result)
    assert caught.value.retry_after == 17


def test_redirect_is_not_followed(agent, tam):
    with StubTam(tam) as stub:
        stub.status_override = (307, {"Location": "http://127.0.0.1:1/elsewhere"})
        result = agent.request_policy_check(f"{stub.base}/tam")
    assert result.http_status == 307 and not result.ok


def test_unreachable_tam_is_a_clear_error(agent):
    result = agent.request_policy_check("http://127.0.0.1:1/tam")
    assert not result.ok and "cannot reach the TAM" in result.error
    assert result.http_status is None


def test_fetch_resumes_a_partial_download_with_range(tmp_path, tam):
    partial = tmp_path / "ta.part"
    partial.write_bytes(PAYLOAD[:4000])
    with StubTam(tam) as stub:
        data = transport.fetch_payload(
            f"{stub.base}/payload/ta.bin", partial, expected_size=len(PAYLOAD)
        )
    assert data == PAYLOAD
    assert stub.range_headers == ["bytes=4000-"]
    assert not partial.exists()


def test_fetch_refuses_more_than_the_manifest_size(tmp_path, tam):
    with StubTam(tam) as stub, pytest.raises(transport.FetchError):
        transport.fetch_payload(f"{stub.base}/payload/ta.bin", tmp_path / "p", expected_size=100)
