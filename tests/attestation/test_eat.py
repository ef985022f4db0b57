"""apps.teep.wire.eat: EAT build/parse/verify, cnf, TEEP 7.1.1 payload kinds, EAR parsing (spec
vectors, Veraison's JWT), TEEP 7.1.1.1 Attestation Result checks, and the interop EATs."""

import json
import time

import cbor2
import pytest

from apps.teep.wire import cose, eat
from apps.teep.wire.eat import AttestationError
from apps.teep.wire.keys import TeepKey
from tests.attestation import edn
from tests.attestation.conftest import TEEP_WASM_DEMO, jwk_key

# --- EAT building, parsing, cnf -------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, alg", [("p256", -9), ("p256", -7), ("ed25519", -19), ("ed25519", -8)]
)
def test_build_then_verify_round_trips_with_each_teep_algorithm(kind, alg):
    key = TeepKey.generate(kind)
    claims = {eat.EAT_NONCE: b"n" * 16, eat.UEID: b"\x01" + b"u" * 16, eat.HWVERSION: ["1.0", 1]}
    token = eat.build_eat(claims, key, alg)
    parsed, message = eat.parse_eat(token)
    assert parsed == claims
    assert message.signatures[0].alg == alg and eat.eat_kid(message) == key.kid
    assert eat.verify_eat(token, key.public()) == claims
    with pytest.raises(AttestationError, match="signature"):
        eat.verify_eat(token, TeepKey.generate(kind))


def test_parse_eat_refuses_what_is_not_a_signed_claims_map():
    key = TeepKey.generate()
    with pytest.raises(AttestationError, match="not a COSE_Sign1"):
        eat.parse_eat(b"\xa0")
    with pytest.raises(AttestationError, match="claims must be a CBOR map"):
        eat.parse_eat(cose.sign1(cbor2.dumps([1, 2]), key))
    with pytest.raises(AttestationError, match="detached"):
        eat.parse_eat(cose.sign1(b"\xa0", key, detached=True))
    with pytest.raises(AttestationError, match="must be bytes"):
        eat.parse_eat("text")


def test_a_cwt_tag_around_the_eat_is_accepted():
    key = TeepKey.generate()
    token = eat.build_eat({eat.UEID: b"\x01abcdefg"}, key)
    tagged = cbor2.dumps(cbor2.CBORTag(61, cbor2.loads(token)))
    assert eat.verify_eat(tagged, key) == {eat.UEID: b"\x01abcdefg"}


def test_cnf_yields_the_cose_key_or_the_kid():
    agent = TeepKey.generate("ed25519")
    from_key = eat.cnf_key_or_kid({eat.CNF: {eat.CNF_COSE_KEY: agent.to_cose_key()}})
    assert isinstance(from_key, TeepKey) and from_key.kid == agent.kid and not from_key.is_private
    assert eat.cnf_key_or_kid({eat.CNF: {eat.CNF_KID: agent.kid}}) == agent.kid
    assert eat.cnf_matches({eat.CNF: {eat.CNF_KID: agent.kid}}, agent)
    assert not eat.cnf_matches({eat.CNF: {eat.CNF_KID: TeepKey.generate().kid}}, agent)
    with pytest.raises(AttestationError, match="no cnf"):
        eat.cnf_key_or_kid({})
    with pytest.raises(AttestationError, match="Encrypted_COSE_Key"):
        eat.cnf_key_or_kid({eat.CNF: {eat.CNF_ENCRYPTED_COSE_KEY: b"x"}})
    with pytest.raises(AttestationError, match="not a usable key"):
        eat.cnf_key_or_kid({eat.CNF: {eat.CNF_COSE_KEY: {1: 2, -1: 1}}})


def test_eat_nonce_is_a_single_bstr_of_8_to_64_bytes():
    assert eat.eat_nonce({eat.EAT_NONCE: b"12345678"}) == b"12345678"
    assert eat.eat_nonce({}) is None
    for bad in ([b"12345678"], b"1234567", b"x" * 65, "text"):
        with pytest.raises(AttestationError):
            eat.eat_nonce({eat.EAT_NONCE: bad})


def test_spec_eat_claims_vector_has_the_teep_profile_claims(vectors_dir):
    # vectors/README.md: the draft's file is not valid EDN (a '/' inside a comment) and labels
    # manifests 273 (RFC 9711: manifests 272, measurements 273). Read it with both fixed.
    text = (vectors_dir / "teep" / "eat_claims.diag").read_text()
    text = text.replace("/ application/cbor, TO BE REPLACED /", "")
    claims = edn.loads(text)
    claims[eat.MANIFESTS] = claims.pop(eat.MEASUREMENTS)
    assert all(label in claims for label in eat.TEEP_REQUIRED_CLAIMS)
    assert eat.cnf_key_or_kid(claims) == bytes.fromhex(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert eat.eat_nonce(claims) == bytes.fromhex("948f8860d13a463e8e")
    assert eat.readable_claims(claims) == {
        "ueid": "0198f50a4ff6c05861c8860d13a638ea",
        "oemid": "894823",
        "hwmodel": "549dcecc8b987c737b44e40f7c635ce8",
        "hwversion": "1.3.4",
    }
    assert eat.oemid_text(claims[eat.OEMID]) == "894823" and eat.oemid_text(64242) == "pen:64242"


# --- TEEP 7.1.1: Evidence or Attestation Result ---------------------------------------------


@pytest.mark.parametrize(
    "fmt",
    [
        None,
        "application/eat+cwt; eat_profile=urn:ietf:rfc:rfcXXXX",
        'application/eat+cwt; eat_profile="urn:ietf:rfc:rfcXXXX"',
        'Application/EAT+CWT;EAT_PROFILE="urn:ietf:rfc:rfcXXXX"',
        "application/eat+cwt ; eat_profile = urn:ietf:rfc:rfcXXXX ; charset=binary",
    ],
)
def test_absent_or_teep_profile_format_is_an_attestation_result(fmt):
    assert eat.attestation_payload_kind(fmt) == "attestation-result"


@pytest.mark.parametrize(
    "fmt",
    [
        "application/eat+cwt",
        "application/eat+cwt; eat_profile=urn:ietf:rfc:rfc9711",
        'application/eat+cwt; eat_profile="tag:tam-portal,2026:evidence"',
        "application/eat+jwt; eat_profile=urn:ietf:rfc:rfcXXXX",
        "application/psa-attestation-token",
        "application/eat+cwt; profile=urn:ietf:rfc:rfcXXXX",
        "",
        "not a media type",
        'application/eat+cwt; eat_profile="urn:ietf:rfc:rfcXXXX',
    ],
)
def test_any_other_format_is_evidence(fmt):
    assert eat.attestation_payload_kind(fmt) == "evidence"


def test_the_teep_profile_can_be_given_its_rfc_number():
    fmt = "application/eat+cwt; eat_profile=urn:ietf:rfc:rfc9999"
    assert eat.attestation_payload_kind(fmt) == "evidence"
    assert (
        eat.attestation_payload_kind(fmt, teep_profiles=["urn:ietf:rfc:rfc9999"])
        == "attestation-result"
    )


def test_media_types_are_normalised_the_way_veraison_compares_them():
    assert (
        eat.normalize_media_type("Application/EAT+CWT; eat_profile=urn:ietf:rfc:rfcXXXX")
        == 'application/eat+cwt; eat_profile="urn:ietf:rfc:rfcXXXX"'
    )
    assert eat.normalize_media_type('application/x; b="tok"; A=1') == "application/x; a=1; b=tok"
    assert eat.parse_media_type('a/b; x="q\\"uoted"') == ("a/b", {"x": 'q"uoted'})
    with pytest.raises(AttestationError):
        eat.parse_media_type("a/b; x=1; x=2")


# --- EAR: the spec's claims-sets -------------------------------------------------------------


def _ear_vector(vectors_dir, name):
    return edn.loads((vectors_dir / "ear" / name).read_text())


def test_ear_json_vectors_parse_into_the_typed_result(vectors_dir):
    one = eat.ear_from_claims(_ear_vector(vectors_dir, "ear-json-1.diag"))
    assert (
        one.status == "contraindicated"
        and one.profile == eat.EAR_PROFILE_03
        and one.iat == 1666529184
    )
    assert one.trust_vector == {"instance-identity": 2, "executables": 96, "hardware": 2}
    assert one.policy_ids == ("https://veraison.example/policy/1/60a0068d",)
    assert one.verifier_id == {"developer": "https://veraison-project.org", "build": "vts 0.0.1"}
    two = eat.ear_from_claims(_ear_vector(vectors_dir, "ear-json-2.diag"))
    assert two.status == "affirming" and set(two.submods) == {"CCA Platform", "CCA Realm"}


def test_ear_cbor_vector_equals_its_json_twin(vectors_dir):
    as_cbor = eat.ear_from_claims(_ear_vector(vectors_dir, "ear-cbor-1.diag"))
    as_json = eat.ear_from_claims(_ear_vector(vectors_dir, "ear-json-1.diag"))
    assert (
        as_cbor.status,
        as_cbor.trust_vector,
        as_cbor.policy_ids,
        as_cbor.verifier_id,
        as_cbor.iat,
    ) == (
        as_json.status,
        as_json.trust_vector,
        as_json.policy_ids,
        as_json.verifier_id,
        as_json.iat,
    )


def test_ear_teep_extension_is_read_in_both_serialisations(vectors_dir):
    cbor_form = eat.ear_from_claims(_ear_vector(vectors_dir, "ext-teep-cbor-1.diag"))
    assert cbor_form.status == "none"  # ear_status 0 in the vector
    assert cbor_form.teep_claims["eat_nonce"] == bytes.fromhex("948f8860d13a463e")
    assert cbor_form.teep_claims["oemid"] == 64242 and cbor_form.teep_claims["hwversion"] == [
        "1.2.5",
        16384,
    ]
    assert bytes.fromhex("948f8860d13a463e") in cbor_form.nonces
    json_form = eat.ear_from_claims(_ear_vector(vectors_dir, "ext-teep-json-1.diag"))
    assert json_form.teep_claims["oemid"] == bytes.fromhex("02ff01")
    assert (
        json_form.teep_claims["ueid"][:3] == b"\x01\x02\x03"
        and len(json_form.teep_claims["eat_nonce"]) == 26
    )


def test_ear_veraison_extensions_are_kept(vectors_dir):
    psa = eat.ear_from_claims(_ear_vector(vectors_dir, "ext-veraison-json-1.diag"))
    assert psa.submods["PSA_IOT"].policy_claims["psa-certified"]["test-lab"] == "Riscure"
    parsec = eat.ear_from_claims(_ear_vector(vectors_dir, "ext-veraison-json-2.diag"))
    assert parsec.status == "affirming"
    assert parsec.submods["PARSEC_TPM"].key_attestation == {"akpub": "MFkwEwYHKoZIzj0CAQYIKoZIz___"}
    cbor_form = eat.ear_from_claims(_ear_vector(vectors_dir, "ext-veraison-cbor-1.diag"))
    assert cbor_form.status == "none"  # ear_status 0
    assert cbor_form.trust_vector == {
        "instance-identity": 2,
        "configuration": 2,
        "executables": 2,
        "hardware": 2,
    }


def test_dotted_and_underscore_names_mean_the_same(vectors_dir):
    underscore = _ear_vector(vectors_dir, "ear-json-1.diag")
    appraisal = underscore["submods"]["PSA"]
    dotted = {
        "eat_profile": eat.EAR_PROFILE_VERAISON,
        "iat": underscore["iat"],
        "ear.verifier-id": underscore["ear_verifier_id"],
        "submods": {
            "PSA": {
                "ear.status": appraisal["ear_status"],
                "ear.trustworthiness-vector": appraisal["ear_trustworthiness_vector"],
                "ear.appraisal-policy-id": appraisal["ear_appraisal_policy_ids"][0],
            }
        },
    }
    a, b = eat.ear_from_claims(underscore), eat.ear_from_claims(dotted)
    assert (a.status, a.trust_vector, a.policy_ids) == (b.status, b.trust_vector, b.policy_ids)


@pytest.mark.parametrize(
    "claims, message",
    [
        ({"submods": {}}, "non-empty"),
        ({"submods": {"x": {"ear_trustworthiness_vector": {}}}}, "no ear_status"),
        ({"submods": {"x": {"ear_status": "great"}}}, "unknown ear_status"),
        ({"iat": 1.5, "submods": {"x": {"ear_status": "affirming"}}}, "integer"),
        (
            {"submods": {"x": {"ear_status": 2, "ear_trustworthiness_vector": {"hardware": 300}}}},
            "-128..127",
        ),
    ],
)
def test_malformed_ears_are_refused(claims, message):
    with pytest.raises(AttestationError, match=message):
        eat.ear_from_claims(claims)


def test_status_tiers_follow_ar4si():
    assert [eat.tier_status(v) for v in (0, 1, 2, 31, 32, 95, 96, 127, -1, -2)] == [
        "none",
        "none",
        "affirming",
        "affirming",
        "warning",
        "warning",
        "contraindicated",
        "contraindicated",
        "none",
        "contraindicated",
    ]
    assert eat.status_from_vector({"a": 2, "b": 0}) == "affirming"
    assert eat.status_from_vector({"a": 2, "b": 33}) == "warning"
    assert eat.status_from_vector({}) == "none"


# --- EAR as JWT -----------------------------------------------------------------------------


def test_signed_ear_jwt_verifies_with_the_pinned_key_only():
    key = TeepKey.generate("p256")
    token = eat.sign_jwt(
        {
            "eat_profile": eat.EAR_PROFILE_VERAISON,
            "iat": 1,
            "submods": {"X": {"ear.status": "warning"}},
        },
        key,
    )
    assert eat.parse_ear_jwt(token, key.public()).status == "warning"
    with pytest.raises(AttestationError, match="does not verify"):
        eat.parse_ear_jwt(token, TeepKey.generate("p256"))
    header, body, sig = token.split(".")
    with pytest.raises(AttestationError, match="does not verify"):
        eat.parse_ear_jwt(f"{header}.{eat.b64url(b'{}')}.{sig}", key)
    none_header = eat.b64url(json.dumps({"alg": "none"}).encode())
    with pytest.raises(AttestationError, match="not allowed"):
        eat.parse_ear_jwt(f"{none_header}.{body}.", key)
    with pytest.raises(AttestationError, match="profile"):
        eat.parse_ear_jwt(
            eat.sign_jwt({"eat_profile": "other", "submods": {"X": {"ear_status": 2}}}, key), key
        )
    ed = TeepKey.generate("ed25519")
    assert eat.parse_ear_jwt(
        eat.sign_jwt({"eat_profile": eat.EAR_PROFILE_03, "submods": {"X": {"ear_status": 2}}}, ed),
        ed,
        algorithms=("EdDSA",),
    ).affirming


def test_teep_wasm_demo_veraison_ear_jwt_parses_and_verifies_with_the_veraison_docs_key(
    interop_dir, specs_dir
):
    token = (interop_dir / TEEP_WASM_DEMO / "prebuilt" / "eat_attestation_result.jwt").read_text()
    unverified = eat.parse_ear_jwt(token, None)
    assert unverified.status == "affirming" and unverified.profile == eat.EAR_PROFILE_VERAISON
    assert unverified.policy_ids == ("policy:PSA_IOT",)
    assert (
        unverified.trust_vector["instance-identity"] == 2
        and unverified.trust_vector["configuration"] == 0
    )
    # The nonce is written in standard base64 with padding; we read either alphabet.
    assert unverified.nonce == eat.b64decode_tolerant(
        "QUp8F0FBs9DpodKK8xUg8NQimf6sQAfe2J1ormzZLxk="
    )
    # The signer is Veraison's example key from the discovery document in the docs repo.
    readme = (specs_dir / "veraison" / "well-known" / "README.md").read_text()
    start = readme.index('"ear-verification-key"')
    jwk_text = readme[readme.index("{", start) : readme.index("}", start) + 1]
    pinned = eat.key_from_jwk(json.loads(jwk_text))
    assert eat.parse_ear_jwt(token, pinned).status == "affirming"
    with pytest.raises(AttestationError):
        eat.parse_ear_jwt(token, TeepKey.generate())


# --- interop EAT Evidence --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["eat_evidence.attester.es256.cose", "eat_evidence_measurements.attester.es256.cose"]
)
def test_teep_wasm_demo_evidence_verifies_with_the_attester_key(interop_dir, name):
    attester = jwk_key(interop_dir / TEEP_WASM_DEMO / "scripts" / "attester-es256-pub.jwk")
    assert attester.kid.hex().startswith("00e16883")
    data = (interop_dir / TEEP_WASM_DEMO / "prebuilt" / name).read_bytes()
    claims = eat.verify_eat(data, attester)
    assert eat.eat_nonce(claims) == bytes.fromhex("948f8860d13a463e8e")
    assert claims[eat.EAT_PROFILE] == "urn:ietf:rfc:rfc9711"
    assert eat.hwversion_text(claims) == "1.3.4"
    # Evidence on first contact carries the agent's COSE_Key (no manifests claim in the demo).
    assert isinstance(eat.cnf_key_or_kid(claims), TeepKey)
    assert eat.MANIFESTS not in claims


def test_teep_wasm_demo_cnf_key_is_identified_by_its_material_not_its_kid_member(interop_dir):
    # eat_evidence.attester.es256.cose names kid d08d1602... in its COSE_Key, but the x/y are the
    # libteep agent key (thumbprint e96788b1...): we go by the key, as RFC 9679 says.
    prebuilt = interop_dir / TEEP_WASM_DEMO / "prebuilt"
    demo_agent = jwk_key(interop_dir / TEEP_WASM_DEMO / "scripts" / "agent-esp256-pub.jwk")
    plain = eat.parse_eat((prebuilt / "eat_evidence.attester.es256.cose").read_bytes())[0]
    assert eat.cnf_key_or_kid(plain).kid.hex().startswith("e96788b1")
    assert not eat.cnf_matches(plain, demo_agent)
    measured = eat.parse_eat(
        (prebuilt / "eat_evidence_measurements.attester.es256.cose").read_bytes()
    )[0]
    assert eat.cnf_matches(measured, demo_agent)
    assert eat.measured_components(measured) == [
        {
            "content_type": 600,
            "name": "TEEP Agent",
            "version": "1.3.4",
            "alg": 1,
            "digest": "deadbeef" * 8,
        }
    ]


def test_libteep_evidence_and_attestation_result_verify_with_their_keys(interop_dir):
    files = interop_dir / "libteep" / "testfiles"
    agent = TeepKey.from_pem((files / "key" / "teep_agent_prime256v1.pem").read_bytes()).public()
    verifier = TeepKey.from_pem((files / "key" / "verifier_prime256v1.pem").read_bytes()).public()
    evidence = eat.verify_eat((files / "evidence_cose.cbor").read_bytes(), agent)
    assert evidence[1] == "Intel SGX TEEP Agent"
    # Old-style: hwversion's version is a bstr; read as text all the same.
    assert eat.hwversion_text(evidence) == "1.3.4"
    result_bytes = (files / "attestation_results_cose.cbor").read_bytes()
    assert eat.verify_eat(result_bytes, verifier)[1] == "Naive Verifier"
    nonce = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")
    # Signed by the verifier and fresh by nonce, but its cnf kid (fb30d569...) is no key we have.
    with pytest.raises(AttestationError, match="cnf names another key"):
        eat.validate_attestation_result(
            result_bytes, verifier_keys=[verifier], agent_key=agent, expected_nonce=nonce
        )
    with pytest.raises(AttestationError, match="neither iat nor a nonce"):
        eat.validate_attestation_result(result_bytes, verifier_keys=[verifier], agent_key=agent)
    with pytest.raises(AttestationError, match="not signed by a Verifier we trust"):
        eat.validate_attestation_result(
            result_bytes, verifier_keys=[agent], agent_key=agent, expected_nonce=nonce
        )


# --- TEEP 7.1.1.1: Attestation Results (Passport model) --------------------------------------


@pytest.fixture
def passport():
    verifier, agent = TeepKey.generate("p256"), TeepKey.generate("ed25519")
    return verifier, agent


def _teep_result(verifier, agent, extra=None):
    claims = {
        eat.CNF: {eat.CNF_KID: agent.kid},
        eat.UEID: b"\x01" + b"u" * 16,
        eat.OEMID: b"\x89\x48\x23",
        eat.HWMODEL: b"m" * 16,
        eat.HWVERSION: ["1.0", 1],
        eat.MANIFESTS: [],
        eat.IAT: int(time.time()),
        eat.EAT_PROFILE: eat.TEEP_EAT_PROFILE,
    }
    claims.update(extra or {})
    return eat.build_eat({k: v for k, v in claims.items() if v is not None}, verifier)


def test_a_teep_profile_attestation_result_passes_7_1_1_1(passport):
    verifier, agent = passport
    result = eat.validate_attestation_result(
        _teep_result(verifier, agent), verifier_keys=[verifier.public()], agent_key=agent
    )
    assert (
        result.affirming
        and result.cnf == agent.kid
        and result.teep_claims["hwversion"] == ["1.0", 1]
    )


def test_attestation_result_cnf_may_be_the_agent_cose_key(passport):
    verifier, agent = passport
    claims = {eat.CNF: {eat.CNF_COSE_KEY: agent.to_cose_key()}, eat.IAT: int(time.time())}
    payload = eat.build_eat(claims, verifier)
    assert eat.validate_attestation_result(
        payload, verifier_keys=[verifier], agent_key=agent
    ).affirming


@pytest.mark.parametrize(
    "extra, message",
    [
        ({eat.IAT: int(time.time()) - 3600}, "older than"),
        ({eat.IAT: int(time.time()) + 3600}, "future"),
        ({eat.EXP: int(time.time()) - 1}, "expired"),
        ({eat.IAT: None}, "neither iat nor a nonce"),
    ],
)
def test_stale_attestation_results_are_refused(passport, extra, message):
    verifier, agent = passport
    with pytest.raises(AttestationError, match=message):
        eat.validate_attestation_result(
            _teep_result(verifier, agent, extra),
            verifier_keys=[verifier],
            agent_key=agent,
            max_age_seconds=300,
        )


def test_attestation_result_for_another_key_or_from_an_untrusted_verifier_is_refused(passport):
    verifier, agent = passport
    with pytest.raises(AttestationError, match="cnf names another key"):
        eat.validate_attestation_result(
            _teep_result(verifier, TeepKey.generate()), verifier_keys=[verifier], agent_key=agent
        )
    with pytest.raises(AttestationError, match="not signed by a Verifier we trust"):
        eat.validate_attestation_result(
            _teep_result(TeepKey.generate(), agent), verifier_keys=[verifier], agent_key=agent
        )
    with pytest.raises(AttestationError, match="no cnf"):
        eat.validate_attestation_result(
            eat.build_eat({eat.IAT: int(time.time())}, verifier),
            verifier_keys=[verifier],
            agent_key=agent,
        )


def test_passport_nonce_must_be_the_query_request_token(passport):
    verifier, agent = passport
    token = b"t" * 16
    payload = _teep_result(verifier, agent, {eat.EAT_NONCE: token})
    assert eat.validate_attestation_result(
        payload, verifier_keys=[verifier], agent_key=agent, expected_nonce=token
    )
    with pytest.raises(AttestationError, match="nonce does not match"):
        eat.validate_attestation_result(
            payload, verifier_keys=[verifier], agent_key=agent, expected_nonce=b"x" * 16
        )


def test_a_cbor_ear_with_teep_claims_is_an_attestation_result(passport, vectors_dir):
    verifier, agent = passport
    claims = _ear_vector(vectors_dir, "ext-teep-cbor-1.diag")
    claims[eat.IAT] = int(time.time())
    claims[eat.CNF] = {eat.CNF_KID: agent.kid}
    claims[eat.SUBMODS]["PSA"][1000] = 2
    result = eat.validate_attestation_result(
        eat.build_eat(claims, verifier),
        verifier_keys=[verifier],
        agent_key=agent,
        expected_nonce=bytes.fromhex("948f8860d13a463e"),
    )
    assert result.affirming and result.teep_claims["hwversion"] == ["1.2.5", 16384]
    claims[eat.SUBMODS]["PSA"][1000] = 96
    assert (
        eat.validate_attestation_result(
            eat.build_eat(claims, verifier), verifier_keys=[verifier], agent_key=agent
        ).status
        == "contraindicated"
    )
