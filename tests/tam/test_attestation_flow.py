"""DESIGN.md "Attestation bootstrap" through the TAM state machine: unknown keys are trusted
only after the Verifier says so (TEEP 7.1.1, 7.1.1.1)."""

import os

import pytest
from django.utils import timezone

from apps.attestation import services as attestation
from apps.attestation.appraisal import VerifierUnavailable
from apps.devices.models import Device, InstalledComponent
from apps.tam import engine
from apps.teep.models import TeepToken
from apps.teep.tam_keys import tam_keys
from apps.teep.wire import cose, messages
from apps.teep.wire.evidence import make_evidence
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.numbering import CURRENT

from .conftest import TA_COMPONENT_ID, SimAgent
from .test_tam import connect, send

pytestmark = pytest.mark.django_db

ASK = (messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),)


@pytest.fixture
def attester(db):
    key = TeepKey.generate("p256")
    attestation.register_attestation_key(public_key_bytes=key.public_pem(), name="factory attester")
    return key


@pytest.fixture
def newcomer():
    """An agent whose key the TAM has never seen (no Device row)."""
    return SimAgent(key=TeepKey.generate("p256"), device=None)


def evidence_for(agent, attester, challenge, **overrides):
    fields = dict(attester_key=attester, challenge=challenge, agent_public_key=agent.key.public(),
                  ueid=b"\x01" + os.urandom(16), oemid=b"\x89\x48\x23", hwmodel=b"model-x", hwversion="1.0")
    fields.update(overrides)
    return make_evidence(**fields)


def attest(agent, attester, **overrides):
    """Token QR -> QueryResponse -> challenge QR -> QueryResponse with Evidence."""
    request = connect(agent)
    challenge_request = agent.read(send(agent, messages.QueryResponse(token=request.token, tc_list=())).body)
    payload, media_type = evidence_for(agent, attester, challenge_request.challenge, **overrides)
    return send(agent, messages.QueryResponse(
        attestation_payload=payload, attestation_payload_format=media_type, tc_list=(), requested_tc_list=ASK,
    ))


def test_first_contact_attests_and_gets_its_components(newcomer, attester, trusted_app):
    answer = attest(newcomer, attester)
    update = newcomer.read(answer.body)
    assert update.manifest_list == (bytes(trusted_app.envelope),)
    device = Device.objects.get(kid=newcomer.key.kid.hex())
    assert device.registration == Device.Registration.ATTESTED and device.state == Device.State.ACTIVE
    assert attestation.is_attestation_fresh(device)
    assert send(newcomer, messages.Success(token=update.token)).outcome == "nothing-due"
    assert InstalledComponent.objects.filter(device=device).exists()


def test_later_contact_within_validity_does_not_attest_again(newcomer, attester, trusted_app):
    newcomer.read(attest(newcomer, attester).body)
    request = connect(newcomer)
    answer = send(newcomer, messages.QueryResponse(token=request.token, tc_list=()))
    # Straight to policy: an Update or nothing, never another challenge.
    assert answer.outcome in ("update", "nothing-due")
    if answer.body:
        assert newcomer.read(answer.body).__class__ is messages.Update


def test_stale_attestation_is_asked_again(newcomer, attester, trusted_app, settings):
    newcomer.read(attest(newcomer, attester).body)
    settings.ATTESTATION_VALIDITY_SECONDS = 0
    request = connect(newcomer)
    again = newcomer.read(send(newcomer, messages.QueryResponse(token=request.token, tc_list=())).body)
    assert isinstance(again, messages.QueryRequest) and again.challenge


def test_tampered_evidence_leaves_the_key_untrusted_and_installs_nothing(newcomer, attester, trusted_app):
    impostor = TeepKey.generate("p256")  # signs the Evidence instead of the registered attester
    answer = attest(newcomer, impostor)
    update = newcomer.read(answer.body)
    assert update.err_code == CURRENT.err_code("ERR_ATTESTATION_REQUIRED")
    assert update.manifest_list is None and "attestation" in update.err_msg
    device = Device.objects.filter(kid=newcomer.key.kid.hex()).first()
    assert device is None or device.state == Device.State.UNTRUSTED
    assert not InstalledComponent.objects.exists()


def test_evidence_for_another_key_is_dropped(newcomer, attester, trusted_app):
    request = connect(newcomer)
    challenge_request = newcomer.read(send(newcomer, messages.QueryResponse(token=request.token, tc_list=())).body)
    other = TeepKey.generate("p256")
    payload, media_type = make_evidence(
        attester_key=attester, challenge=challenge_request.challenge, agent_public_key=other.public(),
        ueid=b"\x01" + os.urandom(16), oemid=b"\x89\x48\x23", hwmodel=b"m", hwversion="1")
    answer = send(newcomer, messages.QueryResponse(attestation_payload=payload,
                                                   attestation_payload_format=media_type, tc_list=()))
    assert answer.dropped and "attested key" in answer.reason


def test_replayed_challenge_is_dropped(newcomer, attester, trusted_app):
    request = connect(newcomer)
    challenge_request = newcomer.read(send(newcomer, messages.QueryResponse(token=request.token, tc_list=())).body)
    payload, media_type = evidence_for(newcomer, attester, challenge_request.challenge)
    first = messages.QueryResponse(attestation_payload=payload, attestation_payload_format=media_type, tc_list=())
    assert not send(newcomer, first).dropped
    replay = send(newcomer, first)
    # The key is trusted by now, so the replay is read as an ordinary QueryResponse lacking its
    # token; either way it is dropped and changes nothing.
    assert replay.dropped and ("challenge" in replay.reason or "without a token" in replay.reason)


def test_verifier_down_gives_503_stores_nothing_and_the_retry_works(newcomer, attester, trusted_app, monkeypatch):
    real = attestation.request_appraisal_and_wait

    def down(**kwargs):
        raise VerifierUnavailable("connection refused")

    monkeypatch.setattr(attestation, "request_appraisal_and_wait", down)
    with pytest.raises(engine.TamUnavailable):
        attest(newcomer, attester)
    assert not Device.objects.filter(kid=newcomer.key.kid.hex()).exists()
    monkeypatch.setattr(attestation, "request_appraisal_and_wait", real)
    update = newcomer.read(attest(newcomer, attester).body)
    assert update.manifest_list


def test_slow_verifier_gives_503_and_the_next_contact_finds_the_key_trusted(newcomer, attester, trusted_app,
                                                                              monkeypatch):
    def appraise_in_background(**kwargs):
        appraisal = attestation.appraise(**{k: kwargs[k] for k in ("evidence", "media_type", "challenge",
                                                                     "agent_key")})
        attestation.record_appraisal(kwargs["agent_key"].kid.hex(), appraisal, agent_key=kwargs["agent_key"])
        return None  # the deadline passed before the result came in

    monkeypatch.setattr(attestation, "request_appraisal_and_wait", appraise_in_background)
    with pytest.raises(engine.TamUnavailable):
        attest(newcomer, attester)
    request = connect(newcomer)
    answer = send(newcomer, messages.QueryResponse(token=request.token, tc_list=(), requested_tc_list=ASK))
    assert newcomer.read(answer.body).manifest_list == (bytes(trusted_app.envelope),)


def test_registered_devices_skip_attestation_unless_required(make_agent, trusted_app, settings):
    agent = make_agent()
    request = connect(agent)
    assert send(agent, messages.QueryResponse(token=request.token, tc_list=())).outcome == "nothing-due"
    settings.TEEP_REQUIRE_ATTESTATION = True
    request = connect(agent)
    challenge = agent.read(send(agent, messages.QueryResponse(token=request.token, tc_list=())).body)
    assert challenge.challenge and challenge.token is None
    assert TeepToken.objects.filter(value=challenge.challenge, kind="challenge", device=agent.device).exists()


def test_challenge_request_uses_the_agents_suite(newcomer, attester):
    newcomer.key = TeepKey.generate("ed25519")
    request = connect(newcomer)
    answer = send(newcomer, messages.QueryResponse(token=request.token, tc_list=()))
    signed = cose.parse(answer.body)
    assert signed.structure == "COSE_Sign1" and signed.signatures[0].alg == -19
    challenge_request = newcomer.read(answer.body)
    assert challenge_request.supported_teep_cipher_suites == (((18, -19),),)
    assert tam_keys().signing_key_for(-19).kid == signed.signatures[0].kid
    assert timezone.now()  # a clock is all the fixture needs


def test_a_policy_group_can_require_attestation_of_registered_devices(make_agent, trusted_app):
    from apps.devices.models import Tag
    from apps.policies.models import DeviceGroup

    agent = make_agent()
    tag = Tag.objects.create(name="payments")
    agent.device.tags.add(tag)
    group = DeviceGroup.objects.create(name="payment terminals", require_attestation=True)
    group.tags.add(tag)
    request = connect(agent)
    challenge = agent.read(send(agent, messages.QueryResponse(token=request.token, tc_list=())).body)
    assert challenge.challenge and challenge.data_item_requested & messages.ATTESTATION
