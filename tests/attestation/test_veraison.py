"""The Veraison client over real HTTP against the stand-in (veraison_standin.py) on 127.0.0.1."""

import http.client
import json
import os
import socket

import pytest

from apps.attestation import services
from apps.attestation.appraisal import VerifierProtocolError, VerifierUnavailable
from apps.teep.wire.evidence import EVIDENCE_MEDIA_TYPE, make_evidence
from apps.attestation.models import AttestationRecord
from apps.attestation.verifiers.veraison import VeraisonConfig, VeraisonVerifier, load_pinned_key
from apps.devices.models import Device
from apps.teep.wire import eat
from apps.teep.wire.keys import TeepKey
from tests.attestation.conftest import HWMODEL, HWVERSION, OEMID, UEID
from tests.attestation.veraison_standin import SESSION_TYPE, VeraisonStandin

TEEP_UNQUOTED = "application/eat+cwt; eat_profile=urn:ietf:rfc:rfc9711"


@pytest.fixture
def keys():
    return {
        "ear": TeepKey.generate("p256"),
        "attester": TeepKey.generate("p256"),
        "agent": TeepKey.generate("ed25519"),
    }


@pytest.fixture
def standin(keys):
    with VeraisonStandin(
        ear_key=keys["ear"],
        attester_key=keys["attester"].public(),
        media_types=[
            EVIDENCE_MEDIA_TYPE,
            'application/eat+cwt; eat_profile="urn:ietf:rfc:rfc9711"',
        ],
    ) as server:
        yield server


def client(standin, keys, **overrides):
    config = dict(
        base_url=standin.base_url, ear_key=keys["ear"].public(), timeout=2.0, deadline=5.0
    )
    config.update(overrides)
    return VeraisonVerifier(VeraisonConfig(**config))


def evidence(keys, challenge, **overrides):
    fields = dict(
        attester_key=keys["attester"],
        challenge=challenge,
        agent_public_key=keys["agent"],
        ueid=UEID,
        oemid=OEMID,
        hwmodel=HWMODEL,
        hwversion=HWVERSION,
    )
    fields.update(overrides)
    return make_evidence(**fields)


def run(standin, keys, challenge=None, media_type=None, payload=None, **config):
    challenge = challenge or os.urandom(32)
    if payload is None:
        payload, mt = evidence(keys, challenge)
        media_type = media_type or mt
    return client(standin, keys, **config).appraise(
        evidence=payload, media_type=media_type, challenge=challenge, agent_key=keys["agent"]
    )


def test_affirming_session_end_to_end(standin, keys):
    challenge = os.urandom(32)
    result = run(standin, keys, challenge)
    assert result.status == "affirming" and result.backend == "veraison", result.reasons
    assert result.trust_vector["instance-identity"] == 2 and len(result.trust_vector) == 8
    assert result.result.profile == eat.EAR_PROFILE_VERAISON and result.result.nonce == challenge
    assert result.claims["ueid"] == UEID.hex() and result.raw_result.startswith(b"eyJ")
    methods = [
        (m, p.rsplit("/", 1)[-1] if "session/" in p else p) for m, p, _ in standin.state.requests
    ]
    assert methods[0] == ("POST", "/challenge-response/v1/newSession")
    assert [m for m, _ in methods] == ["POST", "POST", "DELETE"]
    submit_headers = standin.state.requests[1][2]
    assert submit_headers["Accept"] == SESSION_TYPE
    assert (
        submit_headers["Content-Type"]
        == 'application/eat+cwt; eat_profile="tag:tam-portal,2026:evidence"'
    )
    assert standin.state.sessions == {} and len(standin.state.deleted) == 1


@pytest.mark.parametrize("encoding", ["url-nopad", "url-pad", "std-pad"])
def test_every_session_nonce_encoding_is_read(standin, keys, encoding):
    standin.state.nonce_encoding = encoding
    # 0xfb 0xff bytes make the std and url alphabets differ.
    challenge = bytes([0xFB, 0xFF, 0xBF] * 10 + [0xFE, 0xFF])
    assert run(standin, keys, challenge).affirming


def test_asynchronous_appraisal_is_polled(standin, keys):
    standin.state.async_mode = True
    assert run(standin, keys).affirming
    assert [m for m, _, _ in standin.state.requests] == ["POST", "POST", "GET", "DELETE"]


def test_draft_03_claim_names_are_read(standin, keys):
    standin.state.ear_names = "draft03"
    result = run(standin, keys)
    assert result.affirming and result.result.profile == eat.EAR_PROFILE_03


def test_the_teep_drafts_unquoted_media_type_is_sent_quoted(standin, keys):
    challenge = os.urandom(32)
    payload, _ = evidence(keys, challenge)
    # The stand-in, like Veraison, refuses the unquoted spelling outright...
    connection = http.client.HTTPConnection(
        "127.0.0.1", standin.server.server_address[1], timeout=2
    )
    connection.request(
        "POST",
        "/challenge-response/v1/session/00000000-0000-0000-0000-000000000000",
        body=payload,
        headers={"Accept": SESSION_TYPE, "Content-Type": TEEP_UNQUOTED},
    )
    refused = connection.getresponse()
    assert (
        refused.status == 400
        and "could not check media type" in json.loads(refused.read())["detail"]
    )
    connection.close()
    # ...our client re-serialises it.
    assert run(standin, keys, challenge, media_type=TEEP_UNQUOTED, payload=payload).affirming


def test_evidence_problems_are_a_contraindicated_result(standin, keys):
    payload, media_type = evidence(keys, os.urandom(32))  # answers another challenge
    result = run(standin, keys, media_type=media_type, payload=payload)
    assert result.status == "contraindicated" and result.trust_vector["instance-identity"] == 99
    assert "nonce does not match the session nonce" in result.reason


def test_evidence_naming_another_agent_key_is_contraindicated_locally(standin, keys):
    challenge = os.urandom(32)
    payload, media_type = evidence(keys, challenge, agent_public_key=TeepKey.generate())
    result = run(standin, keys, challenge, media_type, payload)
    assert result.status == "contraindicated" and "cnf names another key" in result.reason


def test_veraison_key_attestation_binds_the_agent_key(standin, keys):
    from cryptography.hazmat.primitives import serialization

    spki = keys["agent"].public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    standin.state.key_attestation = eat.b64url(spki)
    assert run(standin, keys).affirming
    other = TeepKey.generate().public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    standin.state.key_attestation = eat.b64url(other)
    result = run(standin, keys)
    assert (
        result.status == "contraindicated" and "key-attestation names another key" in result.reason
    )


def test_unsupported_media_type_is_a_protocol_error_naming_what_is_accepted(standin, keys):
    with pytest.raises(VerifierProtocolError, match="415.*no active plugin.*accepted"):
        run(standin, keys, media_type="application/psa-attestation-token")
    assert len(standin.state.deleted) == 1  # the session is deleted all the same


@pytest.mark.parametrize("failure", [500, 503, 429, "close"])
def test_server_failures_mean_verifier_unavailable(standin, keys, failure):
    standin.state.fail_next = failure
    with pytest.raises(VerifierUnavailable):
        run(standin, keys)


@pytest.mark.parametrize("failure", [400, 404, 406])
def test_client_errors_are_protocol_errors_with_the_problem_detail(standin, keys, failure):
    standin.state.fail_next = failure
    with pytest.raises(VerifierProtocolError, match=f"HTTP {failure}: injected failure"):
        run(standin, keys)


def test_a_slow_verifier_times_out_and_the_session_is_still_deleted(standin, keys):
    standin.state.delay = 1.5
    with pytest.raises(VerifierUnavailable, match="timed out"):
        run(standin, keys, timeout=0.3)
    assert len(standin.state.deleted) == 1


def test_an_ear_signed_by_another_key_is_refused(standin, keys):
    with pytest.raises(VerifierProtocolError, match="does not verify with the pinned Verifier key"):
        run(standin, keys, ear_key=TeepKey.generate("p256"))


def test_an_unreachable_verifier_is_unavailable(keys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    verifier = VeraisonVerifier(
        VeraisonConfig(base_url=f"http://127.0.0.1:{port}", ear_key=keys["ear"], timeout=1)
    )
    with pytest.raises(VerifierUnavailable, match="unreachable"):
        verifier.appraise(
            evidence=b"x",
            media_type=EVIDENCE_MEDIA_TYPE,
            challenge=os.urandom(32),
            agent_key=keys["agent"],
        )


def test_challenges_outside_veraisons_nonce_range_are_refused_before_any_request(standin, keys):
    with pytest.raises(VerifierProtocolError, match="8..64"):
        run(standin, keys, challenge=os.urandom(65))
    assert standin.state.requests == []


def test_pinned_key_file_may_be_pem_jwk_or_discovery_document(tmp_path, standin, keys):
    pem = tmp_path / "ear.pem"
    pem.write_bytes(keys["ear"].public_pem())
    conn = http.client.HTTPConnection("127.0.0.1", standin.server.server_address[1], timeout=2)
    conn.request("GET", "/.well-known/veraison/verification")
    discovery = tmp_path / "discovery.json"
    discovery.write_bytes(conn.getresponse().read())
    jwk = tmp_path / "ear.jwk"
    jwk.write_text(json.dumps(json.loads(discovery.read_text())["ear-verification-key"]))
    for path in (pem, discovery, jwk):
        assert load_pinned_key(path) == keys["ear"].public()


@pytest.mark.django_db
def test_configured_veraison_backend_through_the_task_trusts_the_key(
    standin, keys, settings, tmp_path
):
    key_file = tmp_path / "ear.pem"
    key_file.write_bytes(keys["ear"].public_pem())
    settings.ATTESTATION_BACKEND = "veraison"
    settings.VERAISON_BASE_URL = standin.base_url + "/"
    settings.VERAISON_EAR_PUBLIC_KEY_FILE = str(key_file)
    challenge = os.urandom(32)
    payload, media_type = evidence(keys, challenge)
    appraisal = services.request_appraisal_and_wait(
        evidence=payload, media_type=media_type, challenge=challenge, agent_key=keys["agent"]
    )
    assert appraisal.affirming and appraisal.backend == "veraison"
    assert bytes(AttestationRecord.objects.get().raw_result).startswith(b"eyJ")
    assert Device.objects.get(kid=keys["agent"].kid.hex()).registration == "attested"
    # A protocol failure is recorded as an "error" appraisal, and trusts nothing.
    other = os.urandom(32)
    payload, _ = evidence(keys, other)
    failed = services.request_appraisal_and_wait(
        evidence=payload,
        media_type="application/unknown",
        challenge=other,
        agent_key=TeepKey.generate(),
    )
    assert failed.status == "error" and "415" in failed.reason


# --- the stand-in itself follows the contract (CLIENT-AND-STANDIN.md 4.4) ---------------------


@pytest.mark.parametrize(
    "method, path, headers, status, detail",
    [
        (
            "POST",
            "/challenge-response/v1/newSession?nonce=AAAAAAAAAAA&nonceSize=8",
            {},
            400,
            "mutually exclusive",
        ),
        ("POST", "/challenge-response/v1/newSession?nonceSize=7", {}, 400, "range 8..64"),
        (
            "POST",
            "/challenge-response/v1/newSession?nonce=AAAA",
            {},
            400,
            "between 8 and 64 bytes long; got 3",
        ),
        ("POST", "/challenge-response/v1/newSession?nonce=%25%25", {}, 400, "valid base64"),
        ("POST", "/challenge-response/v1/newSession", {"Accept": "application/json"}, 406, None),
        ("GET", "/challenge-response/v1/session/not-a-uuid", {}, 400, "invalid session id"),
        (
            "GET",
            "/challenge-response/v1/session/11111111-2222-3333-4444-555555555555",
            {},
            404,
            None,
        ),
        ("GET", "/challenge-response/v1/1111-2222-3333", {}, 404, None),
    ],
)
def test_standin_errors_are_problem_json(standin, method, path, headers, status, detail):
    connection = http.client.HTTPConnection(
        "127.0.0.1", standin.server.server_address[1], timeout=2
    )
    connection.request(method, path, headers={"Accept": SESSION_TYPE, **headers})
    response = connection.getresponse()
    body = json.loads(response.read())
    assert (
        response.status == status and response.headers["Content-Type"] == "application/problem+json"
    )
    assert body["status"] == status and (detail is None or detail in body["detail"])
