"""The TEEP codec against the draft's Appendix D examples and the interop implementations' messages.

Expected values are written out from the .diag files next to each .hex (specs/vectors/teep/).
"""

import hashlib
from pathlib import Path

import cbor2
import pytest

from apps.teep.wire.errors import TeepDecodeError
from apps.teep.wire.messages import (
    ATTESTATION,
    TRUSTED_COMPONENTS,
    Error,
    QueryRequest,
    QueryResponse,
    RequestedTcInfo,
    Success,
    TeepEncodeError,
    Update,
    decode,
    encode,
    message_type_name,
)
from apps.teep.wire.numbering import CURRENT, PRE_26

TOKEN = bytes.fromhex("A0A1A2A3A4A5A6A7A8A9AAABACADAEAF")
ESP256_SUITE = ((18, -9),)
ED25519_SUITE = ((18, -19),)
TEEP_PROFILES = (
    (-16, -9, -29, -65534),  # suit-sha256-esp256-ecdh-a128ctr
    (-16, -19, -29, -65534),  # suit-sha256-ed25519-ecdh-a128ctr
    (-16, -9, -29, 1),  # suit-sha256-esp256-ecdh-a128gcm
    (-16, -19, -29, 24),  # suit-sha256-ed25519-ecdh-chacha-poly
)
# D.3 tc-list[0]: system-component-id and a bstr-wrapped SUIT_Digest [-16, sha256 of the TC].
TC_DIGEST = bytes.fromhex("A7FD6593EAC32EB4BE578278E6540C5C09CFD7D4D234973054833B2B93030609")
TC_CLAIMS = {
    0: (bytes.fromhex("0102030405060708090A0B0C0D0E0F"),),
    3: bytes.fromhex("822f5820") + TC_DIGEST,
}
# D.4 manifest-list[0]: the bstr-wrapped untagged SUIT_Envelope (334 bytes).
D4_ENVELOPE_SHA256 = "c3a7a193aefd297300d498b71e66ae84afa1d2a8d2802a929445073164c8fd6b"

EXPECTED = {
    "query_response": QueryResponse(
        token=TOKEN, selected_version=0, attestation_payload=b"", tc_list=(TC_CLAIMS,)
    ),
    "teep_success": Success(token=TOKEN),
}


def _hex(path: Path) -> bytes:
    return bytes.fromhex("".join(path.read_text().split()))


def _vector(vectors_dir, name, numbering):
    folder = (
        vectors_dir / "teep" if numbering is CURRENT else vectors_dir / "teep" / "pre-26-numbering"
    )
    return _hex(folder / f"{name}.hex")


NUMBERINGS = pytest.mark.parametrize("numbering", [CURRENT, PRE_26], ids=["draft-26", "pre-26"])


# --- Appendix D, both numberings ---------------------------------------------------------------


@NUMBERINGS
@pytest.mark.parametrize("name", ["query_response", "teep_success"])
def test_appendix_d_vector_decodes_and_reencodes(vectors_dir, numbering, name):
    data = _vector(vectors_dir, name, numbering)
    message = decode(data, numbering)
    assert message == EXPECTED[name]
    assert message.ignored_labels == ()
    assert encode(message, numbering) == data


@NUMBERINGS
def test_d6_error_vector(vectors_dir, numbering):
    data = _vector(vectors_dir, "teep_error", numbering)
    message = decode(data, numbering)
    err_code = 11 if numbering is CURRENT else 17  # ERR_MANIFEST_PROCESSING_FAILED
    assert message == Error(token=TOKEN, err_msg="disk-full", err_code=err_code)
    assert numbering.err_code_names[message.err_code] == "ERR_MANIFEST_PROCESSING_FAILED"
    assert message_type_name(message) == "error"
    assert encode(message, numbering) == data


@NUMBERINGS
def test_d4_update_vector(vectors_dir, numbering):
    data = _vector(vectors_dir, "update", numbering)
    message = decode(data, numbering)
    assert isinstance(message, Update) and message.token == TOKEN
    assert len(message.manifest_list) == 1
    envelope = message.manifest_list[0]
    assert len(envelope) == 334 and envelope[:11] == bytes.fromhex("a2025873825824822f5820")
    assert hashlib.sha256(envelope).hexdigest() == D4_ENVELOPE_SHA256
    assert list(cbor2.loads(envelope)) == [2, 3]  # authentication-wrapper, manifest
    assert (message.unneeded_manifest_list, message.err_code, message.attestation_payload) == (
        None,
        None,
        None,
    )
    assert encode(message, numbering) == data


@NUMBERINGS
def test_d1_query_request_is_rejected_for_its_token(vectors_dir, numbering):
    # INDEX.md "Known errors": D.1 sets the attestation bit AND carries a token, which TEEP 4.2
    # forbids ("token MUST be present if and only if the attestation bit is clear").
    with pytest.raises(TeepDecodeError) as caught:
        decode(_vector(vectors_dir, "query_request", numbering), numbering)
    assert caught.value.field == "options.token"
    assert "attestation bit" in caught.value.problem


def _d1_as_written(**changes):
    fields = dict(
        token=TOKEN,
        versions=(0,),
        supported_teep_cipher_suites=(ESP256_SUITE, ED25519_SUITE),
        supported_suit_cose_profiles=TEEP_PROFILES,
        data_item_requested=ATTESTATION | TRUSTED_COMPONENTS,
    )
    fields.update(changes)
    return QueryRequest(**fields)


@NUMBERINGS
def test_encode_refuses_the_d1_query_request(numbering):
    with pytest.raises(TeepEncodeError) as caught:
        encode(_d1_as_written(), numbering)
    assert caught.value.field == "options.token"


@NUMBERINGS
def test_d1_corrected_without_attestation_bit_roundtrips(vectors_dir, numbering):
    # Corrected form 1 (INDEX.md "Known errors"): keep the token, ask for trusted-components only.
    d1 = _vector(vectors_dir, "query_request", numbering)
    assert d1[-1] == 0x03
    corrected = d1[:-1] + b"\x02"  # data-item-requested is the last byte
    message = _d1_as_written(data_item_requested=TRUSTED_COMPONENTS)
    assert encode(message, numbering) == corrected
    assert decode(corrected, numbering) == message


@NUMBERINGS
def test_d1_corrected_with_attestation_and_challenge_roundtrips(numbering):
    # Corrected form 2: attestation bit set, a challenge instead of the token.
    challenge = bytes(range(32))
    message = _d1_as_written(token=None, challenge=challenge)
    data = encode(message, numbering)
    suites = [[[18, -9]], [[18, -19]]]
    profiles = [list(p) for p in TEEP_PROFILES]
    # CDDL order: challenge before versions.
    assert data == cbor2.dumps([1, {2: challenge, 3: [0]}, suites, profiles, 3])
    assert decode(data, numbering) == message


# --- a vector read with the other numbering never passes for the same message --------------------


@pytest.mark.parametrize("name", ["query_response", "update", "teep_success", "teep_error"])
@pytest.mark.parametrize(
    "written, read", [(PRE_26, CURRENT), (CURRENT, PRE_26)], ids=["pre26-as-26", "26-as-pre26"]
)
def test_vector_in_the_other_numbering_is_not_the_same_message(vectors_dir, name, written, read):
    data = _vector(vectors_dir, name, written)
    right = decode(data, written)
    try:
        wrong = decode(data, read)
    except TeepDecodeError:
        return
    assert wrong != right
    # Only possible for Update: its labels fall on labels defined for other messages.
    assert isinstance(wrong, Update) and wrong.token is None and wrong.manifest_list is None
    assert set(wrong.ignored_labels) == set(cbor2.loads(data)[1])


@pytest.mark.parametrize(
    "name, written, read, field",
    [
        (
            "query_request",
            PRE_26,
            CURRENT,
            "options.supported-freshness-mechanisms",
        ),  # 20 = token before
        ("query_request", CURRENT, PRE_26, "options.suit-reports"),  # 19 = token now
        (
            "query_response",
            PRE_26,
            CURRENT,
            "options.attestation-payload",
        ),  # 6 = selected-version before
        ("teep_success", PRE_26, CURRENT, "message"),  # type 5 is Error now: 3 elements needed
        ("teep_success", CURRENT, PRE_26, "type"),  # type 4 was unassigned
        ("teep_error", PRE_26, CURRENT, "type"),  # type 6 is unassigned now
        ("teep_error", CURRENT, PRE_26, "message"),  # type 5 was Success: 2 elements
    ],
)
def test_misnumbered_vector_names_the_field(vectors_dir, name, written, read, field):
    with pytest.raises(TeepDecodeError) as caught:
        decode(_vector(vectors_dir, name, written), read)
    assert caught.value.field == field


# --- teep-wasm-demo prebuilt COSE_Sign1 messages (interop-vectors/README.md) ---------------------

DEMO_TOKEN = bytes.fromhex("0011223344556677")


@pytest.fixture(scope="module")
def prebuilt(shared_dir):
    folder = shared_dir / "interop-vectors" / "teep-wasm-demo" / "testvectors" / "prebuilt"

    def payload(name):
        sign1 = cbor2.loads((folder / name).read_bytes())
        assert isinstance(sign1, cbor2.CBORTag) and sign1.tag == 18  # COSE_Sign1_Tagged
        return sign1.value[2]

    return payload


def _roundtrip(message, numbering):
    # The demo writes options in its own order, so compare values, not bytes.
    assert decode(encode(message, numbering), numbering) == message


def test_demo_query_request(prebuilt):
    data = prebuilt("query_request.tam.esp256.cose")
    message = decode(data, CURRENT)
    assert message.data_item_requested == ATTESTATION and message.token is None
    assert len(message.challenge) == 32 and message.challenge[:4] == bytes.fromhex("414a7c17")
    assert message.supported_teep_cipher_suites == (ESP256_SUITE,)
    assert message.supported_suit_cose_profiles == ((-16, -9, -29, 1),)
    assert encode(message, CURRENT) == data
    # Only label 2 (challenge), equal in both numberings.
    assert decode(data, PRE_26) == message


@pytest.mark.parametrize(
    "name", ["query_response_eat.agent.esp256.cose", "query_response_psa.agent.esp256.cose"]
)
def test_demo_query_response_with_attestation(prebuilt, name):
    message = decode(prebuilt(name), CURRENT)
    assert isinstance(message, QueryResponse) and message.token is None
    assert message.attestation_payload[:1] == b"\xd2"  # a COSE_Sign1_Tagged EAT / PSA token
    assert message.attestation_payload_format is None
    assert message.requested_tc_list == (RequestedTcInfo((b"app.wasm",)),)
    _roundtrip(message, CURRENT)
    with pytest.raises(TeepDecodeError) as caught:
        decode(prebuilt(name), PRE_26)  # label 6 was selected-version
    assert caught.value.field == "options.selected-version"


def test_demo_success(prebuilt):
    message = decode(prebuilt("teep_success.agent.esp256.cose"), CURRENT)
    assert isinstance(message, Success) and message.token == DEMO_TOKEN
    (report,) = message.suit_reports
    assert cbor2.loads(report)[4] is True  # suit-report-result: success
    _roundtrip(message, CURRENT)
    with pytest.raises(TeepDecodeError) as caught:
        decode(prebuilt("teep_success.agent.esp256.cose"), PRE_26)
    assert caught.value.field == "type"


def test_demo_error(prebuilt):
    message = decode(prebuilt("teep_error.agent.esp256.cose"), CURRENT)
    assert isinstance(message, Error) and message.token == DEMO_TOKEN
    assert message.err_code == CURRENT.err_code("ERR_MANIFEST_PROCESSING_FAILED")
    assert len(message.suit_reports) == 1
    _roundtrip(message, CURRENT)
    with pytest.raises(TeepDecodeError):
        decode(prebuilt("teep_error.agent.esp256.cose"), PRE_26)


@pytest.mark.parametrize("name", ["update0.tam.esp256.cose", "update1.tam.esp256.cose"])
def test_demo_updates(prebuilt, name):
    message = decode(prebuilt(name), CURRENT)
    assert isinstance(message, Update) and message.token == DEMO_TOKEN
    (envelope,) = message.manifest_list
    assert list(cbor2.loads(envelope)) == [2, 3, "#app.wasm"]  # integrated payload
    _roundtrip(message, CURRENT)


def test_demo_update_tam_still_uses_pre26_labels(prebuilt):
    # interop-vectors/README.md: update.tam.esp256.cose keeps the old numbers (10 manifest-list,
    # 20 token). Read as -26 those are msg and supported-freshness-mechanisms, which an Update
    # does not define: tolerated as extensions, so the result is an EMPTY Update that says so.
    data = prebuilt("update.tam.esp256.cose")
    wrong = decode(data, CURRENT)
    assert wrong == Update() and set(wrong.ignored_labels) == {10, 20}
    right = decode(data, PRE_26)
    assert right.token == DEMO_TOKEN and len(right.manifest_list) == 1
    _roundtrip(right, PRE_26)


def test_demo_query_response_agent_still_uses_pre26_labels(prebuilt):
    # Not listed among the -26 binaries in the interop README, and indeed old-numbered:
    # 7 attestation-payload, 14 requested-tc-list, 16 component-id. As -26, 7 is tc-list.
    data = prebuilt("query_response.agent.esp256.cose")
    with pytest.raises(TeepDecodeError) as caught:
        decode(data, CURRENT)
    assert caught.value.field == "options.tc-list"
    message = decode(data, PRE_26)
    assert message.requested_tc_list == (RequestedTcInfo((b"app.wasm",)),)
    assert message.attestation_payload[:1] == b"\xd2"
    _roundtrip(message, PRE_26)


# --- libteep testfiles (pre-26 era) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def libteep(shared_dir):
    folder = shared_dir / "interop-vectors" / "libteep" / "testfiles"

    def payload(name):
        data = (folder / name).read_bytes()
        item = cbor2.loads(data)
        if isinstance(item, cbor2.CBORTag) and item.tag == 18:
            return item.value[2]
        return data

    return payload


@pytest.mark.parametrize("name", ["query_response.cbor", "query_response_cose.cbor"])
def test_libteep_query_response_ignores_removed_label_5(libteep, name):
    message = decode(libteep(name), PRE_26)
    assert message.ignored_labels == (5,)  # selected-teep-cipher-suite, removed from the draft
    assert message.token == TOKEN and message.selected_version == 0
    assert message.tc_list == (
        TC_CLAIMS,
        {0: (bytes.fromhex("1102030405060708090a0b0c0d0e0f"),), 28: (1, 0, 0)},
    )
    _roundtrip(message, PRE_26)


@pytest.mark.parametrize("suffix", [".cbor", "_cose.cbor"])
def test_libteep_success_error_update_match_the_draft(libteep, vectors_dir, suffix):
    for name in ("teep_success", "teep_error", "update"):
        assert decode(libteep(name + suffix), PRE_26) == decode(
            _vector(vectors_dir, name, PRE_26), PRE_26
        )


@pytest.mark.parametrize(
    "name, field",
    [
        # Same error as the draft's D.1: token together with the attestation bit.
        ("query_request.cbor", "options.token"),
        ("query_request_cose.cbor", "options.token"),
        # Legacy three-element QueryRequests (also err2's [[null, 3, null]] suite, err3's short
        # token).
        ("query_request_err1.cbor", "message"),
        ("query_request_err2_cose.cbor", "message"),
        ("query_request_err3.cbor", "message"),
        ("query_request_es256.cbor", "message"),
        ("query_request_es384.cbor", "message"),
        # "TrustedAppInstall"-era Updates with an integer token.
        ("ta_update.cbor", "options.token"),
        ("ta_update2.cbor", "options.token"),
        # Not TEEP messages at all: EAT claims maps.
        ("evidence.cbor", "message"),
        ("attestation_results_cose.cbor", "message"),
    ],
)
def test_libteep_invalid_shapes_are_rejected(libteep, name, field):
    with pytest.raises(TeepDecodeError) as caught:
        decode(libteep(name), PRE_26)
    assert caught.value.field == field


def test_empty_tc_list_is_accepted_as_nothing_installed():
    # TEEP 4.3: tc-list MUST be present when trusted-components was requested, but the
    # CDDL says [+ ...]; an agent holding nothing sends [] (DESIGN.md tolerances).
    from apps.teep.wire.messages import QueryResponse, decode, encode

    message = QueryResponse(token=bytes(range(16)), tc_list=())
    assert decode(encode(message)) == message


def test_peek_token_reads_an_unverified_token_and_never_raises():
    from apps.teep.wire.messages import Success, encode, peek_token
    from apps.teep.wire.numbering import PRE_26

    token = bytes(range(8, 24))
    assert peek_token(encode(Success(token=token))) == token
    assert peek_token(encode(Success(token=token), PRE_26), PRE_26) == token
    assert peek_token(encode(Success(token=token), PRE_26)) is None
    for garbage in (b"", b"\xff", b"\x82\x04\xa1\x13\x41\x00", bytes(100)):
        assert peek_token(garbage) is None
