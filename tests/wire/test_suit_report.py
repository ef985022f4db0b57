"""SUIT reports (draft-ietf-suit-report-19): what the simulated agent builds, the TAM parses."""

import binascii
import json

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.teep.wire.errors import SuitError
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit import (
    SuitDigest,
    SuitRecord,
    SystemProperties,
    build_report,
    command_at,
    encrypt_cose_encrypt0,
    make_failure,
    parse_envelope,
    parse_report,
    report_to_json,
    verify_report,
)

TOKEN = bytes(range(16))
DIGEST = SuitDigest(
    -16, bytes.fromhex("B39B52B0B747EA79588C190F567BFC2C8437BA8A73F7EA983182E79F0148D59B")
)


def read_hex(path) -> bytes:
    return binascii.unhexlify("".join(path.read_text().split()))


@pytest.fixture(scope="session")
def agent_key() -> TeepKey:
    return TeepKey.generate("p256")


@pytest.fixture(scope="session")
def suit_cddl(specs_dir):
    from cddl_verifier import Validator

    return Validator((specs_dir / "cddl/suit-manifest-complete.cddl").read_text())


def assert_cddl_valid(validator, data: bytes, rule: str) -> None:
    result = validator.validate(data, root_type=rule)
    assert result.valid, [d.message for d in result.diagnostics]


def test_unsigned_success_report(suit_cddl):
    data = build_report(manifest_digest=DIGEST, manifest_uri="https://tam.example/tc", nonce=TOKEN)
    assert_cddl_valid(suit_cddl, data, "SUIT_Report")
    result = parse_report(data)
    assert (result.container, result.signature, result.encrypted) == (
        "SUIT_Report",
        "unsigned",
        False,
    )
    assert result.success and result.failure is None
    assert result.manifest_uri == "https://tam.example/tc"
    assert result.manifest_digest == DIGEST and result.nonce == TOKEN and result.records == ()
    assert cbor2.loads(data) == {
        99: ["https://tam.example/tc", [-16, DIGEST.value]],
        2: TOKEN,
        3: [],
        4: True,
    }


@pytest.mark.parametrize("tagged", [True, False])
def test_signed_report_verifies_with_the_agent_key(tagged, agent_key, suit_cddl):
    data = build_report(manifest_digest=DIGEST, nonce=TOKEN, signing_key=agent_key, tagged=tagged)
    assert (data[0] == 0xD2) == tagged
    assert_cddl_valid(suit_cddl, data, "SUIT_Report_Protected")
    assert_cddl_valid(
        suit_cddl, cbor2.loads(data).value[2] if tagged else cbor2.loads(data)[2], "SUIT_Report"
    )
    result = parse_report(data, key=agent_key.public())
    assert (result.container, result.signature, result.alg, result.kid) == (
        "COSE_Sign1",
        "verified",
        -9,
        agent_key.kid,
    )
    assert result.success and result.nonce == TOKEN
    assert parse_report(data).signature == "not verified"
    with pytest.raises(SuitError, match="SUIT report signature does not verify with the given key"):
        parse_report(data, key=TeepKey.generate("p256"))


@pytest.mark.parametrize("kid", ["thumbprint", None], ids=["with-kid", "kid-less"])
def test_report_signed_with_the_teep_key_says_which_key_verified_it(kid, agent_key):
    # libcsuit linked with libteep signs SUIT reports with the agent's TEEP key; the TAM gives
    # parse_report the keys it knows for the agent and learns which one signed.
    report_key, other = TeepKey.generate("p256"), TeepKey.generate("p256")
    data = build_report(
        manifest_digest=DIGEST, nonce=TOKEN, signing_key=agent_key,
        kid=... if kid else None,
    )
    keys = [report_key.public(), other.public(), agent_key.public()]

    result = parse_report(data, keys=keys)

    assert result.signature == "verified"
    assert result.verified_by.kid == agent_key.kid
    assert result.kid == (agent_key.kid if kid else None)
    assert report_to_json(result)["verified_by"] == agent_key.kid.hex()
    assert verify_report(data, keys).kid == agent_key.kid
    with pytest.raises(SuitError, match="does not verify with any of the 2 given keys"):
        parse_report(data, keys=[report_key.public(), other.public()])


def test_verify_report_refuses_an_unsigned_report(agent_key):
    data = build_report(manifest_digest=DIGEST, nonce=TOKEN)
    with pytest.raises(SuitError, match=r"not signed \(SUIT_Report\)"):
        verify_report(data, [agent_key.public()])
    assert parse_report(data, keys=[agent_key.public()]).signature == "unsigned"


def test_ed25519_signed_report():
    key = TeepKey.generate("ed25519")
    data = build_report(manifest_digest=DIGEST, signing_key=key, kid=None)
    result = parse_report(data, key=key)
    assert (result.alg, result.kid, result.nonce) == (-19, None, None)


def test_failure_report_names_reason_section_component_and_command(vectors_dir, suit_cddl):
    envelope = parse_envelope(read_hex(vectors_dir / "teep/suit_uri.hex"))
    install = cbor2.loads(cbor2.loads(envelope.manifest_bytes)[20])
    # offset of condition-image-match (the 3rd command) in the install sequence's bytes
    offset = len(cbor2.dumps(install)) - len(cbor2.dumps(3)) - len(cbor2.dumps(15))
    failure = make_failure(
        reason="condition-failed",
        section="install",
        offset=offset,
        component_index=0,
        code=-3,
        properties={"image-digest": SuitDigest.sha256(b"something else"), "image-size": 21},
    )
    measured = SystemProperties(
        (b"TEEP-Device", b"SecureFS"), {"image-size": 21, "vendor-identifier": b"\x01" * 16}
    )
    data = build_report(
        manifest_digest=envelope.digest,
        nonce=TOKEN,
        records=[failure.record, measured],
        failure=failure,
    )
    assert_cddl_valid(suit_cddl, data, "SUIT_Report")

    result = parse_report(data)
    assert not result.success
    assert result.failure.reason == 10 and result.failure.reason_name == "condition-failed"
    assert result.failure.code == -3
    record = result.failure.record
    assert (record.section, record.section_name, record.component_index, record.manifest_id) == (
        20,
        "install",
        0,
        (),
    )
    assert record.properties["image-digest"] == SuitDigest.sha256(b"something else")
    assert result.records[0] == record
    assert result.records[1].component_id == (b"TEEP-Device", b"SecureFS")
    assert result.records[1].properties["image-size"] == 21
    index, command = command_at(envelope, record)
    assert (index, command.name) == (2, "condition-image-match")

    view = report_to_json(result)
    json.dumps(view)
    assert view["failure"]["reason_name"] == "condition-failed"
    assert view["failure"]["record"]["section_name"] == "install"
    assert view["records"][1]["system_component_id"] == ["TEEP-Device", "SecureFS"]


@pytest.mark.parametrize(
    "reason, name",
    [
        (number, name)
        for number, name in enumerate(
            [
                "ok",
                "cbor-parse",
                "cose-unsupported",
                "alg-unsupported",
                "unauthorised",
                "command-unsupported",
                "component-unsupported",
                "component-unauthorised",
                "parameter-unsupported",
                "severing-unsupported",
                "condition-failed",
                "operation-failed",
                "invoke-pending",
            ]
        )
    ],
)
def test_every_report_reason_has_its_name(reason, name):
    failure = make_failure(reason=reason, section=7)
    data = build_report(manifest_digest=DIGEST, failure=failure)
    assert parse_report(data).failure.reason_name == name
    assert (
        parse_report(
            build_report(manifest_digest=DIGEST, failure=make_failure(reason=name, section=7))
        ).failure.reason
        == reason
    )


def test_capability_report(suit_cddl):
    capability = {
        "component": [[b"TEEP-Device", b"SecureFS", True]],
        "command": [1, 2, 3, 12, 20, 21, 33],
        "parameters": [1, 2, 3, 14, 21],
        "crypt-algo": [-16, -9, -29, -65534],
    }
    data = build_report(manifest_digest=DIGEST, capability_report=capability)
    assert_cddl_valid(suit_cddl, data, "SUIT_Report")
    report = parse_report(data).capability_report
    assert report["component"] == ((b"TEEP-Device", b"SecureFS", True),)
    assert report["crypt-algo"] == (-16, -9, -29, -65534)
    json.dumps(report_to_json(parse_report(data)))
    with pytest.raises(SuitError, match="capability report lacks crypt-algo"):
        parse_report(
            build_report(
                manifest_digest=DIGEST,
                capability_report={k: v for k, v in capability.items() if k != "crypt-algo"},
            )
        )


def test_encrypted_report_to_the_tam_key(agent_key):
    tam = TeepKey.generate("p256")
    data = build_report(
        manifest_digest=DIGEST, nonce=TOKEN, signing_key=agent_key, encrypt_to=tam.public()
    )
    result = parse_report(data, key=agent_key, decrypt_key=tam)
    assert (result.container, result.encrypted, result.signature) == (
        "COSE_Sign1(COSE_Encrypt)",
        True,
        "verified",
    )
    assert result.nonce == TOKEN
    with pytest.raises(SuitError, match=r"encrypted \(COSE_Encrypt\) and no decryption key"):
        parse_report(data, key=agent_key)
    with pytest.raises(SuitError, match="cannot decrypt"):
        parse_report(data, decrypt_key=TeepKey.generate("p256"))
    # the KDF context binds the purpose: an "EAT Encryption" key derivation does not open it
    with pytest.raises(SuitError, match="cannot decrypt"):
        parse_report(data, decrypt_key=tam, context_other=b"EAT Encryption")
    unsigned = build_report(manifest_digest=DIGEST, encrypt_to=tam)
    assert parse_report(unsigned, decrypt_key=tam).container == "COSE_Encrypt"


def test_encrypt0_report_with_a_shared_key():
    key = bytes(16)
    plaintext = cbor2.dumps(
        cbor2.dumps({99: ["", [-16, b"\x00" * 32]], 3: [], 4: True})
    )  # bstr .cbor SUIT_Report
    data = encrypt_cose_encrypt0(plaintext, key)
    result = parse_report(data, decrypt_key=key)
    assert (result.container, result.encrypted, result.success) == ("COSE_Encrypt0", True, True)
    with pytest.raises(SuitError, match="authentication tag"):
        parse_report(data, decrypt_key=bytes([1]) * 16)


def test_mac0_reports_are_unsupported():
    mac0 = cbor2.dumps(cbor2.CBORTag(17, [cbor2.dumps({1: 5}), {}, b"\xa0", b"x" * 32]))
    with pytest.raises(SuitError, match="COSE_Mac0 is not supported"):
        parse_report(mac0)
    untagged = cbor2.dumps([cbor2.dumps({1: 5}), {}, b"\xa0", b"x" * 32])
    with pytest.raises(SuitError, match="COSE_Mac0 is not supported"):
        parse_report(untagged)


def test_teep_appendix_f_examples_are_refused_as_outdated():
    # TEEP Appendix F (vectors/teep/suit_report_{success,failure}.diag), written out here.
    digest = cbor2.dumps(
        [-16, bytes.fromhex("a7fd6593eac32eb4be578278e6540c5c09cfd7d4d234973054833b2b93030609")]
    )
    success = {1: digest, 2: "tam.teep.example/personalisation", 4: []}
    failure = {**success, 4: [{1: [], 2: 7, 3: 66, 5: 0, 6: 404}]}
    for example in (success, failure):
        with pytest.raises(SuitError, match=r"suit-reference \(99\) missing .*TEEP Appendix F"):
            parse_report(cbor2.dumps(example))


@pytest.mark.parametrize(
    "report, message",
    [
        ({99: "uri", 3: [], 4: True}, "suit-reference is not"),
        ({99: ["", [-16]], 3: [], 4: True}, "manifest-digest is not a SUIT_Digest"),
        ({99: ["", [-16, b""]], 2: "n", 3: [], 4: True}, "suit-report-nonce"),
        ({99: ["", [-16, b""]], 4: True}, r"no suit-report-records \(3\)"),
        ({99: ["", [-16, b""]], 3: []}, r"no suit-report-result \(4\)"),
        ({99: ["", [-16, b""]], 3: [], 4: False}, "neither true nor a failure map"),
        ({99: ["", [-16, b""]], 3: [], 4: {5: 1, 7: 10}}, r"result-record \(6\) is missing"),
        ({99: ["", [-16, b""]], 3: [], 4: {5: 1, 6: [[], 20, 0, 0, {}], 7: -1}}, "result-reason"),
        ({99: ["", [-16, b""]], 3: [[[], 20, 0]], 4: True}, "not a SUIT_Record"),
        ({99: ["", [-16, b""]], 3: [[["x"], 20, 0, 0, {}]], 4: True}, "manifest-id"),
        ({99: ["", [-16, b""]], 3: [{1: b"x"}], 4: True}, "system-component-id"),
        ({99: ["", [-16, b""]], 3: [{0: [b"a"]}], 4: True}, "no property"),
        ({"x": 1}, "not an integer"),
    ],
)
def test_invalid_reports_name_the_failed_check(report, message):
    with pytest.raises(SuitError, match=message):
        parse_report(cbor2.dumps(report))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01", cbor2.dumps("text"), cbor2.dumps(cbor2.CBORTag(98, [])), cbor2.dumps([1, 2])],
)
def test_non_reports_are_refused(data):
    with pytest.raises(SuitError):
        parse_report(data)


def test_build_report_refuses_bad_arguments():
    with pytest.raises(SuitError, match="manifest_digest"):
        build_report(manifest_digest=b"\x00" * 32)
    with pytest.raises(SuitError, match="unknown SUIT report reason"):
        make_failure(reason="because", section="install")
    with pytest.raises(SuitError, match="unknown SUIT parameter"):
        build_report(manifest_digest=DIGEST, records=[SuitRecord((), 20, 0, 0, {"colour": 1})])


@settings(deadline=None, max_examples=300)
@given(position=st.integers(0, 10_000), xor=st.integers(1, 255), signed=st.booleans())
def test_flipped_report_bytes_raise_only_suit_error(position, xor, signed):
    key = _FUZZ_KEY
    failure = make_failure(
        reason="operation-failed", section="install", properties={"image-size": 3}
    )
    data = bytearray(
        build_report(
            manifest_digest=DIGEST,
            nonce=TOKEN,
            records=[failure.record, SystemProperties((b"a",), {"uri": "x"})],
            failure=failure,
            capability_report={
                "component": [[b"a", True]],
                "command": [1],
                "parameters": [1],
                "crypt-algo": [-16],
            },
            signing_key=key if signed else None,
        )
    )
    data[position % len(data)] ^= xor
    try:
        json.dumps(report_to_json(parse_report(bytes(data), key=key.public() if signed else None)))
    except SuitError:
        pass


_FUZZ_KEY = TeepKey.generate("p256")

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64 - 1),
    st.binary(max_size=20),
    st.text(max_size=6),
)
_value = st.recursive(
    _leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.integers(-3, 100), children, max_size=6),
        st.builds(cbor2.CBORTag, st.sampled_from([16, 17, 18, 96]), children),
        children.map(cbor2.dumps),
    ),
    max_leaves=30,
)


@settings(deadline=None, max_examples=400)
@given(
    report=st.fixed_dictionaries(
        {
            99: st.one_of(
                st.tuples(
                    st.text(max_size=5), st.tuples(st.integers(-20, 0), st.binary(max_size=4))
                ).map(list),
                _value,
            ),
            3: st.lists(
                st.one_of(
                    _value,
                    st.tuples(
                        st.lists(st.integers(0, 3)),
                        st.integers(-2, 30),
                        st.integers(0, 9),
                        st.integers(0, 3),
                        st.dictionaries(st.integers(-2, 30), _value),
                    ).map(list),
                ),
                max_size=4,
            ),
            4: st.one_of(
                st.just(True), _value, st.fixed_dictionaries({5: _value, 6: _value, 7: _value})
            ),
        },
        optional={2: _value, 8: _value},
    ),
    wrap=st.sampled_from(["bare", "sign1", "bstr"]),
)
def test_random_reports_raise_only_suit_error(report, wrap):
    data = cbor2.dumps(report)
    if wrap == "sign1":
        data = cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps({1: -9}), {}, data, b"\x00" * 64]))
    elif wrap == "bstr":
        data = cbor2.dumps(data)
    try:
        json.dumps(report_to_json(parse_report(data)))
    except SuitError:
        pass


# --- strict decoding: cyclic items refused, ordinary ones decoded once (issue 11) ---------------


@pytest.mark.parametrize(
    "shareable_head", ["d81c", "d9001c", "da0000001c", "db000000000000001c"]
)
def test_a_cyclic_item_is_refused_whatever_the_size_of_its_tag_head(shareable_head):
    from apps.teep.wire.suit._cbor import decode_exact

    # [shared-reference 0] inside the array marked shareable: the array contains itself.
    cyclic = bytes.fromhex(shareable_head + "81d81d00")
    with pytest.raises(SuitError, match="cyclic"):
        decode_exact(cyclic, "SUIT report")
    with pytest.raises(SuitError):
        parse_report(cyclic)


def test_an_ordinary_report_is_not_re_encoded_to_look_for_cycles(monkeypatch):
    from apps.teep.wire.suit import _cbor

    data = cbor2.dumps({99: ["https://tam.example/m", [-16, b"\x00" * 32]], 3: []})
    encodings = []
    monkeypatch.setattr(_cbor.cbor2, "dumps", lambda *a, **k: encodings.append(a) or b"")
    assert _cbor.decode_exact(data, "SUIT report")[3] == []
    assert encodings == []
