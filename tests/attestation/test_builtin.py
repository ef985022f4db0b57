"""The built-in Verifier, through services.appraise(), with keys generated at test time."""

import os
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.attestation import services
from apps.teep.wire.evidence import EVIDENCE_MEDIA_TYPE, make_evidence, measured_component
from apps.teep.tam_keys import tam_keys
from apps.teep.wire import eat
from apps.teep.wire.keys import TeepKey
from tests.attestation.conftest import HWMODEL, HWVERSION, OEMID, UEID

pytestmark = pytest.mark.django_db


def appraise(world, challenge, payload=None, **kwargs):
    media_type = EVIDENCE_MEDIA_TYPE
    if payload is None:
        payload, media_type = world.evidence(challenge)
    return services.appraise(
        evidence=payload,
        media_type=kwargs.pop("media_type", media_type),
        challenge=challenge,
        agent_key=kwargs.pop("agent_key", world.agent),
        **kwargs,
    )


def test_good_evidence_is_affirming_with_an_ear_shaped_result(world, challenge):
    result = appraise(world, challenge)
    assert result.status == "affirming", result.reasons
    assert result.trust_vector == {"instance-identity": 2}
    assert result.claims["ueid"] == UEID.hex() and result.claims["hwversion"] == HWVERSION
    assert result.claims["attestation_key"] == "test attester"
    # The stored result is an EAR claims-set (CBOR labels) naming the agent key in cnf.
    ear = eat.ear_from_claims(eat._loads(result.raw_result, "ear"))
    assert (
        ear.affirming and ear.cnf == world.agent.kid and ear.teep_claims["eat_nonce"] == challenge
    )
    assert result.result.profile == eat.EAR_PROFILE_03


def test_evidence_media_type_is_not_the_teep_profile():
    assert eat.attestation_payload_kind(EVIDENCE_MEDIA_TYPE) == "evidence"


@pytest.mark.parametrize(
    "attester_kind, attester_alg", [("p256", -7), ("p256", -9), ("ed25519", -8), ("ed25519", -19)]
)
@pytest.mark.parametrize("agent_kind", ["p256", "ed25519"])
def test_every_teep_algorithm_for_the_attester_and_the_agent(
    db, attester_kind, attester_alg, agent_kind
):
    attester, agent = TeepKey.generate(attester_kind), TeepKey.generate(agent_kind)
    services.register_attestation_key(public_key_bytes=attester.public_pem(), name="a")
    challenge = os.urandom(32)
    payload, media_type = make_evidence(
        attester_key=attester,
        challenge=challenge,
        agent_public_key=agent,
        ueid=UEID,
        oemid=OEMID,
        hwmodel=HWMODEL,
        hwversion=HWVERSION,
        alg=attester_alg,
    )
    assert eat.parse_eat(payload)[1].signatures[0].alg == attester_alg
    result = services.appraise(
        evidence=payload, media_type=media_type, challenge=challenge, agent_key=agent
    )
    assert result.affirming, result.reasons


def test_bad_signature_is_contraindicated_not_an_exception(world, challenge):
    forged, _ = make_evidence(
        attester_key=TeepKey.generate(),
        challenge=challenge,
        agent_public_key=world.agent,
        ueid=UEID,
        oemid=OEMID,
        hwmodel=HWMODEL,
        hwversion=HWVERSION,
        alg=None,
    )
    # Same kid as the registered attester, other key: the signature check fails.
    claims, _ = eat.parse_eat(forged)
    forged = eat.build_eat(claims, TeepKey.generate(), kid=world.attester.kid)
    result = appraise(world, challenge, forged)
    assert result.status == "contraindicated"
    assert result.trust_vector["instance-identity"] == 99
    assert "signature does not verify" in result.reason


def test_unknown_attester_is_contraindicated(world, challenge):
    payload, _ = world.evidence(challenge, attester_key=TeepKey.generate())
    result = appraise(world, challenge, payload)
    assert result.status == "contraindicated" and "no active attestation key" in result.reason
    assert result.trust_vector == {"instance-identity": 97}


def test_an_inactive_attester_key_is_not_used(world, challenge):
    services.set_attestation_key_active(world.attester_row, active=False)
    assert appraise(world, challenge).status == "contraindicated"


def test_attester_found_by_ueid_when_the_eat_has_no_kid(db, challenge):
    attester, agent = TeepKey.generate(), TeepKey.generate()
    services.register_attestation_key(
        public_key_bytes=attester.public_pem(), name="by ueid", ueid=UEID.hex()
    )
    claims, _ = eat.parse_eat(
        make_evidence(
            attester_key=attester,
            challenge=challenge,
            agent_public_key=agent,
            ueid=UEID,
            oemid=OEMID,
            hwmodel=HWMODEL,
            hwversion=HWVERSION,
        )[0]
    )
    payload = eat.build_eat(claims, attester, kid=None)
    result = services.appraise(
        evidence=payload, media_type=EVIDENCE_MEDIA_TYPE, challenge=challenge, agent_key=agent
    )
    assert result.affirming, result.reasons


def test_a_key_bound_to_a_ueid_refuses_evidence_for_another_device(db, challenge):
    attester, agent = TeepKey.generate(), TeepKey.generate()
    services.register_attestation_key(
        public_key_bytes=attester.public_pem(), name="bound", ueid="01" + "ab" * 16
    )
    payload, media_type = make_evidence(
        attester_key=attester,
        challenge=challenge,
        agent_public_key=agent,
        ueid=UEID,
        oemid=OEMID,
        hwmodel=HWMODEL,
        hwversion=HWVERSION,
    )
    result = services.appraise(
        evidence=payload, media_type=media_type, challenge=challenge, agent_key=agent
    )
    assert result.status == "contraindicated" and "bound to UEID" in result.reason


def test_wrong_nonce_is_contraindicated(world, challenge):
    payload, _ = world.evidence(os.urandom(32))
    result = appraise(world, challenge, payload)
    assert result.status == "contraindicated" and "does not match the challenge" in result.reason


def test_replayed_challenge_is_contraindicated(world, challenge):
    payload, _ = world.evidence(challenge)
    assert appraise(world, challenge, payload).affirming
    again = appraise(world, challenge, payload)
    assert again.status == "contraindicated" and "replay" in again.reason


def test_expired_challenge_is_contraindicated(world, challenge):
    result = appraise(world, challenge, challenge_expires_at=timezone.now() - timedelta(seconds=1))
    assert result.status == "contraindicated" and "challenge expired" in result.reason


def test_expired_evidence_is_contraindicated(world, challenge):
    payload, _ = world.evidence(challenge, extra_claims={eat.EXP: int(time.time()) - 10})
    assert "Evidence has expired" in appraise(world, challenge, payload).reason


@pytest.mark.parametrize("label", eat.TEEP_REQUIRED_CLAIMS)
def test_missing_required_claim_is_contraindicated(world, challenge, label):
    claims, _ = eat.parse_eat(world.evidence(challenge)[0])
    del claims[label]
    result = appraise(world, challenge, eat.build_eat(claims, world.attester))
    assert result.status == "contraindicated"
    assert (
        f"missing required claim(s) of the TEEP EAT profile: {eat.CLAIM_NAMES[label]}"
        in result.reason
    )


def test_cnf_of_another_key_is_contraindicated(world, challenge):
    payload, _ = world.evidence(challenge, agent_public_key=TeepKey.generate("ed25519"))
    result = appraise(world, challenge, payload)
    assert result.status == "contraindicated" and "cnf names key" in result.reason
    assert result.trust_vector["instance-identity"] == 96
    assert eat.CNF not in eat._loads(result.raw_result, "ear")  # the result vouches for no key


def test_cnf_as_a_kid_is_compared_by_thumbprint(world, challenge):
    claims, _ = eat.parse_eat(world.evidence(challenge)[0])
    claims[eat.CNF] = {eat.CNF_KID: world.agent.kid}
    assert appraise(world, challenge, eat.build_eat(claims, world.attester)).affirming


def _measurement_refs():
    services.create_reference_value(
        name="agent 1.3.4", claim="measurement", measurement_name="TEEP Agent", expected="aa" * 32
    )


def test_measurements_matching_reference_values_affirm_executables(world, challenge):
    _measurement_refs()
    payload, _ = world.evidence(
        challenge, measurements=[measured_component("TEEP Agent", "1.3.4", b"\xaa" * 32)]
    )
    result = appraise(world, challenge, payload)
    assert result.affirming and result.trust_vector["executables"] == 2
    assert result.claims["measurements"][0]["name"] == "TEEP Agent"


def test_measurement_mismatch_is_a_warning(world, challenge):
    _measurement_refs()
    payload, _ = world.evidence(
        challenge, measurements=[measured_component("TEEP Agent", "1.3.4", b"\xbb" * 32)]
    )
    result = appraise(world, challenge, payload)
    assert result.status == "warning" and result.trust_vector["executables"] == 33
    assert "measurement 'TEEP Agent'" in result.reason and not result.affirming


def test_missing_measurement_is_a_warning(world, challenge):
    _measurement_refs()
    result = appraise(world, challenge)
    assert result.status == "warning" and "is not reported" in result.reason


def test_hardware_reference_values(world, challenge):
    services.create_reference_value(name="model", claim="hwmodel", expected=HWMODEL.hex())
    services.create_reference_value(name="v1.3.4", claim="hwversion", expected="1.3.4")
    services.create_reference_value(name="v1.3.5", claim="hwversion", expected="1.3.5")
    services.create_reference_value(name="oem", claim="oemid", expected="89:48:23")
    assert appraise(world, challenge).trust_vector == {"hardware": 2, "instance-identity": 2}
    other = os.urandom(32)
    payload, _ = world.evidence(other, hwversion="0.9")
    result = appraise(world, other, payload)
    assert result.status == "contraindicated" and result.trust_vector["hardware"] == 97
    assert "hwversion 0.9 matches no reference value" in result.reason


def test_reference_values_scoped_to_another_hwmodel_do_not_apply(world, challenge):
    services.create_reference_value(
        name="other", claim="hwversion", expected="9.9", scope_hwmodel="00" * 16
    )
    assert appraise(world, challenge).affirming


def test_encrypted_evidence_is_decrypted_with_the_tam_key(world, challenge):
    tam_p256 = tam_keys().signing_key_for(-9)
    payload, media_type = world.evidence(challenge, encrypt_to=tam_p256.public())
    assert eat.is_cose_encrypt(payload)
    assert appraise(world, challenge, payload, media_type=media_type).affirming


def test_evidence_encrypted_to_another_key_is_contraindicated(world, challenge):
    payload, _ = world.evidence(challenge, encrypt_to=TeepKey.generate("p256"))
    result = appraise(world, challenge, payload)
    assert result.status == "contraindicated" and "does not decrypt" in result.reason


def test_non_eat_evidence_is_refused_with_a_reason(world, challenge):
    result = appraise(
        world, challenge, b"\x00" * 40, media_type="application/psa-attestation-token"
    )
    assert result.status == "contraindicated" and "appraises EAT Evidence" in result.reason
    garbage = appraise(world, os.urandom(32), b"\x00" * 40)
    assert "not a signed EAT" in garbage.reason
