"""Property tests of the TEEP codec: round trips, CDDL conformance of what we encode, and
robustness: whatever bytes come in, decode() either returns a message or raises TeepDecodeError.
"""

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.teep.wire.errors import TeepDecodeError
from apps.teep.wire.messages import (
    ATTESTATION,
    Error,
    QueryRequest,
    QueryResponse,
    RequestedTcInfo,
    Success,
    Update,
    decode,
    encode,
)
from apps.teep.wire.numbering import CURRENT, PRE_26
from tests.conftest import _shared_dir
from tests.wire.cddl_validation import cddl_errors

VECTORS = _shared_dir() / "specs" / "vectors" / "teep"
ENVELOPES = tuple(
    bytes.fromhex("".join((VECTORS / f"suit_{name}.hex").read_text().split()))
    for name in ("uri", "integrated", "personalization")
)
TC_DIGEST = cbor2.dumps([-16, bytes(range(32))])
_REFERENCE = ["https://example.org/tc.suit", [-16, bytes(32)]]
SUIT_REPORTS = (
    cbor2.dumps({99: _REFERENCE, 3: [], 4: True}),
    cbor2.dumps({99: _REFERENCE, 2: bytes(8), 3: [{0: [b"tc"], 14: 20}], 4: True}),
)
SUITES = (((18, -9),), ((18, -19),))
PROFILES = ((-16, -9, -29, -65534), (-16, -19, -29, -65534), (-16, -9, -29, 1), (-16, -19, -29, 24))

PROPERTY = settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
CDDL_SAMPLE = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
NUMBERINGS = pytest.mark.parametrize("numbering", [CURRENT, PRE_26], ids=["draft-26", "pre-26"])


# --- strategies for valid messages -------------------------------------------------------------
# `wide` draws anything the codec accepts; without it, only what the draft's CDDL defines
# (its two cipher suites, four SUIT profiles, two freshness mechanisms, no extra parameters).

uint32 = st.integers(0, 2**32 - 1)
uint64 = st.integers(0, 2**64 - 1)
token = st.binary(min_size=8, max_size=64)
challenge = st.binary(min_size=8, max_size=80) | st.binary(min_size=500, max_size=512)
short_text = st.text(min_size=1, max_size=32)  # at most 128 bytes of UTF-8
err_lang = st.text(min_size=1, max_size=8)  # at most 32 bytes
component_id = st.lists(st.binary(max_size=12), max_size=4).map(tuple)


def _plus(strategy, max_size=3):
    return st.lists(strategy, min_size=1, max_size=max_size).map(tuple)


def _optional(strategy):
    return st.none() | strategy


def cipher_suites(wide):
    if wide:
        return _plus(_plus(st.tuples(st.integers(-70000, 70000), st.integers(-70000, 70000)), 2))
    return st.lists(st.sampled_from(SUITES), min_size=1, max_size=2, unique=True).map(tuple)


def profiles(wide):
    return _plus(_plus(st.integers(-70000, 70000), 5) if wide else st.sampled_from(PROFILES), 4)


def freshness(wide):
    return _plus(uint32 if wide else st.sampled_from((0, 1)), 2)


def claims(wide):
    # system-property-claims: system-component-id plus at least one SUIT parameter.
    known = st.fixed_dictionaries({}, optional={3: st.just(TC_DIGEST), 14: uint32, 5: uint32})
    extra = st.dictionaries(
        st.integers(-50, 50).filter(bool),
        st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=8) | st.text(max_size=8),
        max_size=3,
    )
    params = (
        st.tuples(known, extra if wide else st.just({}))
        .map(lambda p: {**p[1], **p[0]})
        .filter(bool)
    )
    return st.tuples(component_id, params).map(lambda c: {0: c[0], **c[1]})


@st.composite
def requested_tc_info(draw):
    have_binary = draw(st.sampled_from((None, False, True)))
    sequence = draw(uint64 if have_binary else _optional(uint64))
    return RequestedTcInfo(draw(component_id), sequence, have_binary)


@st.composite
def query_requests(draw, wide=True):
    data_item_requested = draw(st.integers(0, 15))
    attestation = bool(data_item_requested & ATTESTATION)
    return QueryRequest(
        token=None if attestation else draw(token),  # TEEP 4.2
        supported_freshness_mechanisms=draw(_optional(freshness(wide))) if attestation else None,
        challenge=draw(_optional(challenge)) if attestation else None,
        versions=draw(_optional(_plus(uint32))),
        attestation_payload_format=draw(_optional(st.text(max_size=60))),
        attestation_payload=draw(_optional(st.binary(max_size=40))),
        suit_reports=draw(_optional(_plus(st.sampled_from(SUIT_REPORTS), 2))),
        supported_teep_cipher_suites=draw(cipher_suites(wide)),
        supported_suit_cose_profiles=draw(profiles(wide)),
        data_item_requested=data_item_requested,
    )


def query_responses(wide=True):
    return st.builds(
        QueryResponse,
        token=_optional(token),
        selected_version=_optional(uint32),
        attestation_payload_format=_optional(st.text(max_size=60)),
        attestation_payload=_optional(st.binary(max_size=40)),
        suit_reports=_optional(_plus(st.sampled_from(SUIT_REPORTS), 2)),
        tc_list=_optional(_plus(claims(wide))),
        requested_tc_list=_optional(_plus(requested_tc_info())),
        unneeded_manifest_list=_optional(_plus(component_id)),
        ext_list=_optional(_plus(uint32)),
    )


def updates(numbering, wide=True):
    return st.builds(
        Update,
        token=_optional(token),
        unneeded_manifest_list=_optional(_plus(component_id)),
        manifest_list=_optional(_plus(st.sampled_from(ENVELOPES), 2)),
        attestation_payload_format=_optional(st.text(max_size=60)),
        attestation_payload=_optional(st.binary(max_size=40)),
        err_code=_optional(st.sampled_from(sorted(numbering.err_code_names))),
        err_msg=_optional(short_text),
        err_lang=_optional(err_lang),
    )


def successes():
    return st.builds(
        Success,
        token=_optional(token),
        msg=_optional(short_text),
        suit_reports=_optional(_plus(st.sampled_from(SUIT_REPORTS), 2)),
    )


def errors(numbering, wide=True):
    return st.builds(
        Error,
        token=_optional(token),
        err_msg=_optional(short_text),
        err_lang=_optional(err_lang),
        supported_teep_cipher_suites=_optional(cipher_suites(wide)),
        supported_freshness_mechanisms=_optional(freshness(wide)),
        supported_suit_cose_profiles=_optional(profiles(wide)),
        challenge=_optional(challenge),
        versions=_optional(_plus(uint32)),
        suit_reports=_optional(_plus(st.sampled_from(SUIT_REPORTS), 2)),
        err_code=st.sampled_from(sorted(numbering.err_code_names)),
    )


def messages(numbering, wide=True):
    return st.one_of(
        query_requests(wide),
        query_responses(wide),
        updates(numbering, wide),
        successes(),
        errors(numbering, wide),
    )


@NUMBERINGS
@PROPERTY
@given(data=st.data())
def test_encode_decode_roundtrip(numbering, data):
    message = data.draw(messages(numbering))
    encoded = encode(message, numbering)
    assert decode(encoded, numbering) == message
    assert encode(decode(encoded, numbering), numbering) == encoded


@NUMBERINGS
@CDDL_SAMPLE
@given(data=st.data())
def test_encoded_messages_match_the_cddl(numbering, data):
    message = data.draw(messages(numbering, wide=False))
    assert cddl_errors(encode(message, numbering), numbering) == ()


# --- robustness ----------------------------------------------------------------------------------


def _decode_or_reject(data: bytes, numbering) -> None:
    """decode() may refuse with TeepDecodeError; anything it accepts must survive encode()."""
    try:
        message = decode(data, numbering)
    except TeepDecodeError as e:
        assert e.field and e.problem
        return
    encoded = encode(message, numbering)
    # Bytes, not objects: a float NaN inside a tc-list parameter is not equal to itself.
    assert encode(decode(encoded, numbering), numbering) == encoded


@NUMBERINGS
@PROPERTY
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_only_teep_decode_error(numbering, data):
    _decode_or_reject(data, numbering)


cbor_leaf = (
    st.integers(-(2**64), 2**64 - 1)
    | st.binary(max_size=70)
    | st.text(max_size=40)
    | st.booleans()
    | st.none()
    | st.floats()
)
cbor_values = st.recursive(
    cbor_leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.integers(-5, 30) | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)
teep_shaped = st.tuples(
    st.integers(0, 7),
    st.dictionaries(st.integers(0, 25), cbor_values, max_size=5),
    st.lists(cbor_values, max_size=4),
).map(lambda t: [t[0], t[1], *t[2]])


@NUMBERINGS
@PROPERTY
@given(item=teep_shaped | cbor_values)
def test_random_cbor_raises_only_teep_decode_error(numbering, item):
    _decode_or_reject(cbor2.dumps(item), numbering)


def _seed_encodings():
    seeds = [
        bytes.fromhex("".join(path.read_text().split()))
        for path in sorted(VECTORS.glob("*.hex"))
        + sorted((VECTORS / "pre-26-numbering").glob("*.hex"))
        if not path.name.startswith("suit_") and not path.name.endswith(".annotated.hex")
    ]
    seeds.append(
        encode(Error(err_code=5, supported_teep_cipher_suites=SUITES, versions=(0,), err_lang="en"))
    )
    seeds.append(
        encode(QueryResponse(requested_tc_list=(RequestedTcInfo((b"a",), 1, True),), ext_list=(1,)))
    )
    return seeds


SEEDS = _seed_encodings()


@st.composite
def byte_mutations(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("flip", "insert", "delete", "set")))
        at = draw(st.integers(0, len(data)))
        if kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif data and at < len(data):
            if kind == "flip":
                data[at] ^= 1 << draw(st.integers(0, 7))
            elif kind == "delete":
                del data[at : at + draw(st.integers(1, 4))]
            else:
                data[at] = draw(st.integers(0, 255))
    return bytes(data)


@NUMBERINGS
@PROPERTY
@given(data=byte_mutations())
def test_mutated_bytes_decode_or_raise_teep_decode_error(numbering, data):
    _decode_or_reject(data, numbering)


def _paths(value, path=()):
    yield path
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        return [_replace(item, rest, new) if i == head else item for i, item in enumerate(value)]
    return {key: _replace(item, rest, new) if key == head else item for key, item in value.items()}


@st.composite
def value_mutations(draw):
    item = cbor2.loads(draw(st.sampled_from(SEEDS)))
    path = draw(st.sampled_from(list(_paths(item))))
    return cbor2.dumps(_replace(item, path, draw(cbor_values)))


@NUMBERINGS
@PROPERTY
@given(data=value_mutations())
def test_replaced_values_decode_or_raise_teep_decode_error(numbering, data):
    _decode_or_reject(data, numbering)


def test_nesting_and_trailing_bytes_are_refused():
    with pytest.raises(TeepDecodeError, match="deeper"):
        decode(b"\x81" * 10_000 + b"\x00")
    with pytest.raises(TeepDecodeError, match="after the CBOR item"):
        decode(encode(Success()) + b"\x00")
    with pytest.raises(TeepDecodeError, match="duplicate"):
        decode(b"\x82\x04\xa2\x0a\x61a\x0a\x61b")  # Success with msg twice
    with pytest.raises(TeepDecodeError, match="tag"):
        decode(cbor2.dumps([4, {19: cbor2.CBORTag(2, bytes(8))}]))  # a bignum is not a bstr
