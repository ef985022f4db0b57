"""Behaviour knobs that make the product agent act like agents in the field (libteep,
teep-device, libcsuit), each checked here against the fake TAM; the TAM's side of these
exchanges is tested end to end elsewhere."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cbor2
import pytest

from apps.agent.agent import Behaviour, TeepAgent
from apps.teep.wire import ciphersuites, cose, messages
from apps.teep.wire.messages import TeepEncodeError
from apps.teep.wire.numbering import CURRENT, PRE_26
from apps.teep.wire.suit import parse_report

from .fake_tam import COMPONENT, FakeTam
from .test_agent import ALL_ITEMS, install


def payload_of(body: bytes) -> list:
    """The agent's message as raw CBOR: what the codec would not show (extra labels)."""
    return cbor2.loads(cose.parse(body).payload)


def legacy_agent(tmp_path, tam, **knobs) -> TeepAgent:
    agent = TeepAgent(tmp_path / "agent", numbering=tam.numbering, behaviour=Behaviour(**knobs))
    for key in tam.public_keys:
        agent.add_tam_key(key)
    return agent


# --- label 5, selected-teep-cipher-suite (pre-26 era) ---------------------------------------------


@pytest.mark.parametrize("es256, alg", [(True, -7), (False, -9)])
def test_selected_cipher_suite_label_is_sent_and_ignored_by_the_codec(tmp_path, es256, alg):
    tam = FakeTam(numbering=PRE_26)
    agent = legacy_agent(
        tmp_path, tam, legacy_selected_cipher_suite_label=True, legacy_es256=es256
    )
    token = tam.token()

    reply = agent.handle_message(tam.query_request(token=token, bits=ALL_ITEMS))

    # As libteep's query_response.cbor: {20: token, 5: [[18, -7]], ...}: the suite it signs with.
    assert payload_of(reply.body)[1][5] == [[ciphersuites.COSE_SIGN1, alg]]
    assert cose.parse(reply.body).signatures[0].alg == alg
    response = tam.open(reply.body, agent.key)  # what the TAM's codec makes of it
    assert isinstance(response, messages.QueryResponse) and response.token == token
    assert response.ignored_labels == (5,)


def test_no_label_5_without_the_knob(tmp_path):
    tam = FakeTam(numbering=PRE_26)
    reply = legacy_agent(tmp_path, tam).handle_message(tam.query_request(bits=ALL_ITEMS))
    assert 5 not in payload_of(reply.body)[1]


def test_selected_cipher_suite_label_needs_the_pre26_numbering(tmp_path):
    with pytest.raises(ValueError, match="label 5 is selected-version in the draft-26"):
        legacy_agent(tmp_path, FakeTam(numbering=CURRENT), legacy_selected_cipher_suite_label=True)


# --- tc-list [] ----------------------------------------------------------------------------------


@pytest.fixture
def codec_refusing_empty_tc_list(monkeypatch):
    """The codec with the CDDL's `[+ ...]` rule for tc-list (ours accepts [] today, DESIGN.md
    decision 2): the situation in which a well-behaved agent leaves tc-list out."""
    encode = messages.encode

    def strict(message, numbering=CURRENT):
        if isinstance(message, messages.QueryResponse) and message.tc_list == ():
            raise TeepEncodeError("options.tc-list", "must have at least 1 element(s)")
        return encode(message, numbering)

    monkeypatch.setattr(messages, "encode", strict)


def test_empty_tc_list_is_sent_even_when_the_codec_would_leave_it_out(
    tmp_path, tam, codec_refusing_empty_tc_list
):
    plain = legacy_agent(tmp_path / "plain", tam)
    forced = legacy_agent(tmp_path / "forced", tam, empty_tc_list=True)
    tc_list = tam.numbering.label("tc-list")

    plain_reply = plain.handle_message(tam.query_request(bits=ALL_ITEMS))
    forced_reply = forced.handle_message(tam.query_request(bits=ALL_ITEMS))

    assert tc_list not in payload_of(plain_reply.body)[1]
    assert payload_of(forced_reply.body)[1][tc_list] == []
    assert tam.open(forced_reply.body, forced.key).tc_list == ()


def test_empty_tc_list_only_when_requested_and_nothing_installed(tmp_path, tam):
    agent = legacy_agent(tmp_path, tam, empty_tc_list=True)
    tc_list = tam.numbering.label("tc-list")
    extensions_only = agent.handle_message(tam.query_request(bits=messages.EXTENSIONS))
    assert tc_list not in payload_of(extensions_only.body)[1]
    install(agent, tam)
    (claims,) = payload_of(agent.handle_message(tam.query_request(bits=ALL_ITEMS)).body)[1][
        tc_list
    ]
    assert claims[0] == list(COMPONENT)


# --- verifies only COSE_Sign1 ES256 (libteep) ---------------------------------------------------


def test_verify_only_sign1_es256_drops_what_libteep_cannot_verify(tmp_path, tam):
    agent = legacy_agent(tmp_path, tam, verify_only_sign1_es256=True, legacy_es256=True)

    cose_sign = agent.handle_message(tam.query_request())  # TEEP 8.1 default: -9 and -19
    sign1_esp256 = agent.handle_message(tam.query_request(alg=-9))
    sign1_es256 = agent.handle_message(tam.query_request(alg=-7))

    assert cose_sign.body is None and "not a COSE_Sign with alg" in cose_sign.dropped
    assert sign1_esp256.body is None and "ES256 (-7)" in sign1_esp256.dropped
    assert sign1_es256.sent == "query-response"
    assert cose.parse(sign1_es256.body).signatures[0].alg == -7
    update = tam.update(token=tam.token(), manifests=[tam.envelope(b"TA")], alg=-9)
    assert agent.handle_message(update).body is None  # every TAM message, not only the first
    update = tam.update(token=tam.token(), manifests=[tam.envelope(b"TA")], alg=-7)
    assert agent.handle_message(update).sent == "success"


def test_verify_only_sign1_es256_needs_a_p256_key(tmp_path, tam):
    with pytest.raises(ValueError, match="verify_only_sign1_es256 needs a P-256"):
        TeepAgent(
            tmp_path / "a",
            key_type="ed25519",
            behaviour=Behaviour(verify_only_sign1_es256=True),
        )


# --- SUIT reports signed with the TEEP key (libcsuit linked with libteep) ------------------------


def test_reports_signed_with_the_teep_key(tmp_path, tam):
    agent = legacy_agent(tmp_path, tam, sign_reports_with_teep_key=True)
    _, reply, success = install(agent, tam)
    (report,) = success.suit_reports
    keys = [agent.report_key.public(), agent.key.public()]
    result = parse_report(report, keys=keys)
    assert result.verified_by.kid == agent.kid and result.kid == agent.kid
    boot = tam.open(agent.handle_message(tam.query_request(bits=ALL_ITEMS)).body, agent.key)
    assert parse_report(boot.suit_reports[0], keys=keys).verified_by.kid == agent.kid


def test_reports_signed_with_the_report_key_by_default(agent, tam):
    _, _, success = install(agent, tam)
    result = parse_report(success.suit_reports[0], keys=[agent.key.public(), agent.report_key])
    assert result.verified_by.kid == agent.report_key.kid


# --- HTTP: chunked bodies and a fixed Host (teep-device) ------------------------------------------


class RecordingTam:
    """A TEEP/HTTP endpoint that records each POST's headers and body (decoding a chunked
    body itself) and answers as a TAM would: QueryRequest, Update, then 204."""

    def __init__(self, tam: FakeTam, alg: int | None = None):
        self.tam = tam
        self.alg = alg  # None: the default first QueryRequest (COSE_Sign, -9 and -19)
        self.posts = []  # (headers, body)
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.posts.append((dict(self.headers), body))
                answer = recorder.answer(body)
                self.send_response(200 if answer else 204)
                if answer:
                    self.send_header("Content-Type", "application/teep+cbor")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def _read_chunked(self) -> bytes:
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()  # the CRLF after the last-chunk
                        return body
                    body += self.rfile.read(size)
                    self.rfile.readline()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, body: bytes) -> bytes:
        if not body:
            return self.tam.query_request(bits=ALL_ITEMS, alg=self.alg)
        message = messages.decode(cose.parse(body).payload, self.tam.numbering)
        if isinstance(message, messages.QueryResponse):
            manifests = [self.tam.envelope(b"TA")]
            return self.tam.update(token=self.tam.token(), manifests=manifests, alg=self.alg or -9)
        return b""

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_port}/tam"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_chunked_body_and_fixed_host(tmp_path, tam):
    agent = legacy_agent(tmp_path, tam, chunked_body=True, fixed_host="example.com")
    with RecordingTam(tam) as recorder:
        result = agent.request_policy_check(recorder.url)

    assert result.ok, result.to_json()
    assert result.messages == [
        ("empty", "query-request"),
        ("query-response", "update"),
        ("success", None),
    ]
    assert len(recorder.posts) == 3
    for headers, _ in recorder.posts:
        assert headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in headers
        assert headers["Host"] == "example.com"
    bodies = [body for _, body in recorder.posts]
    assert bodies[0] == b""
    assert isinstance(tam.open(bodies[1], agent.key), messages.QueryResponse)
    assert isinstance(tam.open(bodies[2], agent.key), messages.Success)


def test_plain_posts_have_content_length_and_the_uri_host(agent, tam):
    with RecordingTam(tam) as recorder:
        assert agent.request_policy_check(recorder.url).ok
    for headers, body in recorder.posts:
        assert headers["Content-Length"] == str(len(body))
        assert "Transfer-Encoding" not in headers
        assert headers["Host"] == f"127.0.0.1:{recorder.server.server_port}"
