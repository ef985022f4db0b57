"""The TEEP Agent's message handling (TEEP 4.3-4.6, 7.2) against a fake TAM."""

import hashlib
import stat

import pytest

from apps.agent import transport
from apps.agent.agent import (
    AttestationEvidence,
    Behaviour,
    TeepAgent,
    parse_component_id,
    parse_public_keys,
)
from apps.teep.wire import ciphersuites, cose, messages
from apps.teep.wire.component_ids import component_id_text
from apps.teep.wire.errors import CoseError, SuitError
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit import SuitDigest, parse_report
from apps.teep.wire.suit import constants as suit_constants

from .fake_tam import COMPONENT, MANIFEST_ID, signed_alg, unprotected_kid

ALL_ITEMS = messages.TRUSTED_COMPONENTS | messages.SUIT_REPORTS


def install(agent, tam, payload=b"TA binary v1", sequence_number=1, **kwargs):
    token = tam.token()
    envelope = tam.envelope(payload, sequence_number=sequence_number, **kwargs)
    reply = agent.handle_message(tam.update(token=token, manifests=[envelope]))
    return token, reply, tam.open(reply.body, agent.key)


def err(tam, name):
    return tam.numbering.err_code(name)


# --- keys and state ------------------------------------------------------------------------------


def test_keys_are_generated_once_private_files_mode_600(tmp_path):
    agent = TeepAgent(tmp_path / "a")
    again = TeepAgent(tmp_path / "a")
    assert agent.kid == again.kid
    for name in ("agent.pem", "report.pem"):
        mode = stat.S_IMODE((tmp_path / "a" / "keys" / name).stat().st_mode)
        assert mode == 0o600
    assert TeepKey.from_pem(agent.public_key_path.read_bytes()).kid == agent.kid


def test_suit_report_key_differs_from_teep_key(tmp_path):
    agent = TeepAgent(tmp_path / "a")
    assert agent.report_key.kid != agent.key.kid  # TEEP 4.5


def test_ed25519_key_type(tmp_path):
    agent = TeepAgent(tmp_path / "a", key_type="ed25519")
    assert agent.key.kind == "ed25519"
    assert agent.supported_cipher_suites[0] == ciphersuites.SUITE_SIGN1_ED25519


def test_tam_keys_export_text_is_accepted(tmp_path, tam):
    import cbor2

    exported = ""
    for key in tam.public_keys:
        cose_hex = cbor2.dumps(key.to_cose_key(), canonical=True).hex()
        exported += f"# kid {key.kid.hex()}\n{key.public_pem().decode()}COSE_Key: {cose_hex}\n\n"
    assert {k.kid for k in parse_public_keys(exported)} == {k.kid for k in tam.public_keys}
    cose_only = cbor2.dumps(tam.p256.to_cose_key(), canonical=True).hex()
    assert parse_public_keys(cose_only)[0].kid == tam.p256.kid


def test_component_id_from_text_or_cbor_hex():
    text = component_id_text(COMPONENT)
    import cbor2

    assert parse_component_id(text) == COMPONENT
    assert parse_component_id(cbor2.dumps(list(COMPONENT)).hex()) == COMPONENT


# --- QueryRequest -> QueryResponse ----------------------------------------------------------------


@pytest.mark.parametrize("key_type, alg", [("p256", -9), ("ed25519", -19)])
def test_cose_sign_query_request_is_answered_with_signed_query_response(
    make_agent, tam, key_type, alg
):
    agent = make_agent(key_type=key_type)
    token = tam.token()
    reply = agent.handle_message(tam.query_request(token=token, bits=ALL_ITEMS))

    assert reply.sent == "query-response"
    response = tam.open(reply.body, agent.key)
    assert isinstance(response, messages.QueryResponse)
    assert response.token == token
    assert unprotected_kid(reply.body) == agent.kid  # TEEP 5: RFC 9679 thumbprint
    assert signed_alg(reply.body) == alg
    assert cose.parse(reply.body).tagged
    assert response.selected_version is None  # absent means 0 (4.3)
    assert response.tc_list in ((), None)  # empty if the codec accepts [], else omitted
    assert response.suit_reports is None


def test_cose_sign1_query_request_with_agent_suite(agent, tam):
    reply = agent.handle_message(tam.query_request(bits=ALL_ITEMS, alg=-19))
    assert isinstance(tam.open(reply.body, agent.key), messages.QueryResponse)


def test_tc_list_reflects_installs(agent, tam):
    install(agent, tam, b"payload one")
    reply = agent.handle_message(tam.query_request(bits=ALL_ITEMS))
    response = tam.open(reply.body, agent.key)
    (claims,) = response.tc_list
    assert claims[0] == COMPONENT
    assert claims[3] == SuitDigest.sha256(b"payload one").to_cbor()


def test_boot_suit_reports_carry_the_token_and_the_report_key(agent, tam):
    install(agent, tam)
    token = tam.token()
    response = tam.open(
        agent.handle_message(tam.query_request(token=token, bits=ALL_ITEMS)).body, agent.key
    )
    (raw,) = response.suit_reports
    report = parse_report(raw, key=agent.report_key)
    assert report.nonce == token and report.success
    with pytest.raises(SuitError):
        parse_report(raw, key=agent.key)


def test_requested_and_unneeded_lists(agent, tam):
    other = (b"TEEP-Device", b"SecureFS", b"other", b"ta")
    assert agent.request_ta(component_id_text(other), min_sequence=3)
    install(agent, tam)
    assert agent.request_ta(COMPONENT) is False  # already installed: nothing to ask (7.2)
    assert agent.unrequest_ta(COMPONENT) == MANIFEST_ID
    response = tam.open(agent.handle_message(tam.query_request(bits=ALL_ITEMS)).body, agent.key)
    assert response.requested_tc_list == (messages.RequestedTcInfo(other, 3),)
    assert response.unneeded_manifest_list == (MANIFEST_ID,)


def test_extensions_bit_is_answered(agent, tam):
    bits = messages.TRUSTED_COMPONENTS | messages.EXTENSIONS
    response = tam.open(agent.handle_message(tam.query_request(bits=bits)).body, agent.key)
    assert response.ext_list in ((), None)


def test_no_matching_cipher_suite_gives_error_with_our_suites(make_agent, tam):
    agent = make_agent(key_type="ed25519")
    reply = agent.handle_message(
        tam.query_request(suites=[ciphersuites.SUITE_SIGN1_ESP256], alg=-9)
    )
    error = tam.open(reply.body, agent.key)
    assert isinstance(error, messages.Error)
    assert error.err_code == err(tam, "ERR_UNSUPPORTED_CIPHER_SUITES")
    assert ciphersuites.SUITE_SIGN1_ED25519 in error.supported_teep_cipher_suites
    assert signed_alg(reply.body) == -19  # a suite mandatory for the TAM (8.1)


def test_unsupported_version_gives_error_with_versions(agent, tam):
    token = tam.token()
    error = tam.open(
        agent.handle_message(tam.query_request(token=token, versions=[7])).body, agent.key
    )
    assert error.err_code == err(tam, "ERR_UNSUPPORTED_MSG_VERSION")
    assert error.versions == (0,)
    assert error.token == token


def test_attestation_without_provider_is_a_permanent_error(agent, tam):
    request = tam.query_request(
        bits=messages.ATTESTATION | messages.TRUSTED_COMPONENTS, challenge=b"c" * 32
    )
    error = tam.open(agent.handle_message(request).body, agent.key)
    assert error.err_code == err(tam, "ERR_PERMANENT_ERROR")
    assert "attestation not supported" in error.err_msg
    assert error.token is None


def test_attestation_with_evidence_provider(make_agent, tam):
    seen = []

    def provider(request):
        seen.append(request)
        return AttestationEvidence(
            b"evidence:" + request.challenge, "application/eat+cwt; eat_profile=x"
        )

    agent = make_agent(evidence_provider=provider)
    request = tam.query_request(
        bits=messages.ATTESTATION | messages.TRUSTED_COMPONENTS, challenge=b"c" * 32
    )
    response = tam.open(agent.handle_message(request).body, agent.key)
    assert response.attestation_payload == b"evidence:" + b"c" * 32
    assert response.attestation_payload_format == "application/eat+cwt; eat_profile=x"
    assert seen[0].agent_kid == agent.kid and response.token is None


def test_query_request_signed_by_unknown_tam_is_dropped(agent, tam):
    from .fake_tam import FakeTam

    stranger = FakeTam(numbering=tam.numbering)
    reply = agent.handle_message(stranger.query_request())
    assert reply.body is None and "does not verify" in reply.dropped


# --- Update -> Success / Error -------------------------------------------------------------------


def test_update_installs_integrated_payload_and_answers_success(agent, tam):
    token, reply, success = install(agent, tam, b"hello TA")
    assert isinstance(success, messages.Success)
    assert success.token == token
    (raw,) = success.suit_reports
    report = parse_report(raw, key=agent.report_key)
    assert report.success and report.nonce == token
    (component,) = agent.installed_components()
    assert component.component_id == COMPONENT
    assert component.manifest_component_id == MANIFEST_ID
    assert component.sequence_number == 1
    assert component.read_payload() == b"hello TA"
    assert reply.installed == [component_id_text(COMPONENT)]


def test_update_is_answered_with_the_selected_suite(make_agent, tam):
    agent = make_agent(key_type="ed25519")
    agent.handle_message(tam.query_request())
    token = tam.token()
    reply = agent.handle_message(tam.update(token=token, alg=-19))
    assert signed_alg(reply.body) == -19
    assert tam.open(reply.body, agent.key) == messages.Success(token=token)


def test_newer_version_replaces_older(agent, tam):
    install(agent, tam, b"v1", 1)
    _, _, success = install(agent, tam, b"v2", 2)
    assert isinstance(success, messages.Success)
    (component,) = agent.installed_components()
    assert (component.sequence_number, component.read_payload()) == (2, b"v2")
    files = sorted(p.name for p in component.payload_path.parent.iterdir())
    assert len(files) == 3  # meta.json + the new payload and envelope only


def test_rollback_is_refused(agent, tam):
    install(agent, tam, b"v2", 2)
    token, reply, error = install(agent, tam, b"v1", 1)
    assert isinstance(error, messages.Error)
    assert error.err_code == err(tam, "ERR_MANIFEST_PROCESSING_FAILED")
    report = parse_report(error.suit_reports[0], key=agent.report_key)
    assert not report.success and report.nonce == token
    assert report.failure.record.section == suit_constants.MANIFEST_SEQUENCE_NUMBER
    (component,) = agent.installed_components()
    assert component.sequence_number == 2 and component.read_payload() == b"v2"


def test_same_sequence_number_is_refused(agent, tam):
    install(agent, tam, b"v1", 1)
    _, _, error = install(agent, tam, b"v1 again", 1)
    assert isinstance(error, messages.Error)


def test_digest_mismatch_fails_with_report_and_installs_nothing(agent, tam, monkeypatch):
    monkeypatch.setattr(transport, "fetch_payload", lambda uri, partial, **kw: b"not the TA")
    token, reply, error = install(agent, tam, b"the real TA", uri="https://tam.example/ta.bin")
    assert isinstance(error, messages.Error)
    assert error.err_code == err(tam, "ERR_MANIFEST_PROCESSING_FAILED")
    assert error.token == token
    report = parse_report(error.suit_reports[0], key=agent.report_key)
    assert report.nonce == token
    assert report.failure.reason_name == "condition-failed"
    assert report.failure.record.section == suit_constants.COMMAND_SEQUENCE_BY_NAME["install"]
    assert report.failure.record.properties["image-digest"] == SuitDigest.sha256(b"not the TA")
    assert agent.installed_components() == []
    assert "digest" in reply.failures[0]


def test_envelope_from_untrusted_signer_is_refused(agent, tam):
    stranger = TeepKey.generate("p256")
    _, _, error = install(agent, tam, signing_key=stranger)
    report = parse_report(error.suit_reports[0])
    assert report.failure.reason_name == "unauthorised"
    assert agent.installed_components() == []


def test_envelope_from_trusted_tc_signer_is_installed(agent, tam):
    agent.add_signer_key(tam.signer.public_pem())
    _, _, success = install(agent, tam, signing_key=tam.signer)
    assert isinstance(success, messages.Success)


def test_one_failing_manifest_does_not_stop_the_others(make_agent, tam):
    other = (b"TEEP-Device", b"SecureFS", b"other", b"ta")
    agent = make_agent(behaviour=Behaviour(fail_install_of=frozenset({component_id_text(other)})))
    token = tam.token()
    envelopes = [
        tam.envelope(b"good", component=COMPONENT),
        tam.envelope(b"bad", component=other, manifest_component_id=other[:-1] + (b"suit",)),
    ]
    reply = agent.handle_message(tam.update(token=token, manifests=envelopes))
    error = tam.open(reply.body, agent.key)
    assert error.err_code == err(tam, "ERR_MANIFEST_PROCESSING_FAILED")
    reports = [parse_report(raw, key=agent.report_key) for raw in error.suit_reports]
    assert [r.success for r in reports] == [True, False]
    assert [c.component_id for c in agent.installed_components()] == [COMPONENT]


def test_unneeded_manifest_is_unlinked(agent, tam):
    install(agent, tam)
    agent.unrequest_ta(COMPONENT)
    token = tam.token()
    reply = agent.handle_message(tam.update(token=token, unneeded=[MANIFEST_ID]))
    assert tam.open(reply.body, agent.key) == messages.Success(token=token)
    assert agent.installed_components() == []
    assert reply.removed == [component_id_text(COMPONENT)]
    assert agent.state.unrequested() == []


def test_unlinking_what_is_not_installed_succeeds(agent, tam):
    reply = agent.handle_message(tam.update(token=tam.token(), unneeded=[MANIFEST_ID]))
    assert isinstance(tam.open(reply.body, agent.key), messages.Success)


def test_update_err_code_is_recorded_and_acknowledged(agent, tam):
    code = err(tam, "ERR_PERMANENT_ERROR")
    token = tam.token()
    reply = agent.handle_message(
        tam.update(token=token, err_code=code, err_msg="tc-list is missing")
    )
    assert reply.tam_error["err_code"] == code
    assert reply.tam_error["err_name"] == "ERR_PERMANENT_ERROR"
    assert tam.open(reply.body, agent.key) == messages.Success(token=token)


def test_unsigned_update_is_dropped(agent, tam):
    payload = messages.encode(messages.Update(token=tam.token()), tam.numbering)
    reply = agent.handle_message(payload)
    assert reply.body is None and "COSE" in reply.dropped


def test_tampered_update_is_dropped(agent, tam):
    body = bytearray(tam.update(token=tam.token(), manifests=[tam.envelope(b"x")]))
    body[-1] ^= 1
    reply = agent.handle_message(bytes(body))
    assert reply.body is None and "does not verify" in reply.dropped
    assert agent.installed_components() == []


def test_valid_signature_over_bad_message_gets_permanent_error(agent, tam):
    body = cose.sign1(b"\x82\x03\xa1\x63bad\x01", tam.p256)
    error = tam.open(agent.handle_message(body).body, agent.key)
    assert error.err_code == err(tam, "ERR_PERMANENT_ERROR")


# --- behaviour knobs -----------------------------------------------------------------------------


def test_temporary_error_knob(make_agent, tam):
    agent = make_agent(behaviour=Behaviour(temporary_error=True))
    _, _, error = install(agent, tam)
    assert error.err_code == err(tam, "ERR_TEMPORARY_ERROR")
    assert agent.installed_components() == []


def test_tamper_signature_knob(make_agent, tam):
    agent = make_agent(behaviour=Behaviour(tamper_signature=True))
    reply = agent.handle_message(tam.query_request())
    with pytest.raises(CoseError):
        tam.open(reply.body, agent.key)


def test_omit_kid_and_es256_knobs(make_agent, tam):
    agent = make_agent(behaviour=Behaviour(omit_kid=True, legacy_es256=True))
    reply = agent.handle_message(tam.query_request())
    assert unprotected_kid(reply.body) is None
    assert signed_alg(reply.body) == -7
    assert isinstance(tam.open(reply.body, agent.key), messages.QueryResponse)


def test_payload_digest_in_tc_list_is_sha256_of_payload(agent, tam):
    install(agent, tam, b"abc")
    (component,) = agent.installed_components()
    assert component.image_sha256 == hashlib.sha256(b"abc").digest()
