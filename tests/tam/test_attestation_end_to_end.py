"""Remote attestation end to end over real HTTP with the product's TEEP Agent."""

import pytest
from django.core.files.base import ContentFile

from apps.agent.agent import TeepAgent
from apps.agent.attestation import EatEvidenceProvider, load_or_create_attester, ueid_for
from apps.attestation import services as attestation
from apps.attestation.appraisal import VerifierUnavailable
from apps.components import services as catalogue
from apps.devices.models import Device, InstalledComponent
from apps.teep.tam_keys import tam_keys

from .conftest import TA_COMPONENT_ID

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def portal(live_server, settings):
    settings.TAM_PUBLIC_BASE_URL = live_server.url
    component = catalogue.create_component(name="hello-ta", component_id=TA_COMPONENT_ID, actor=None)
    catalogue.upload_binary(
        component=component, binary_file=ContentFile(b"Hello, Secure World!", name="hello.ta"),
        version_label="1.0", sequence_number=1, actor=None, release=True,
    )
    return f"{live_server.url}/tam"


def attesting_agent(path, *, register_attester=True, encrypt=False) -> TeepAgent:
    """An agent the TAM has never seen, whose TEE can produce Evidence."""
    attester = load_or_create_attester(path)
    if register_attester:
        attestation.register_attestation_key(public_key_bytes=attester.public_pem(), name=f"TEE {path.name}")
    provider = EatEvidenceProvider(
        attester_key=attester, ueid=ueid_for(attester),
        encrypt_to=tam_keys().signing_key_for(-9).public() if encrypt else None,
    )
    agent = TeepAgent(path, evidence_provider=provider)
    for key in tam_keys().public_keys:
        agent.add_tam_key(key)
    agent.request_ta(TA_COMPONENT_ID)
    return agent


def test_first_contact_attests_and_gets_components_then_does_not_attest_again(tmp_path, portal):
    agent = attesting_agent(tmp_path / "a", encrypt=True)
    result = agent.request_policy_check(portal)
    assert result.ok, result.to_json()
    assert [m for m in result.messages] == [
        ("empty", "query-request"), ("query-response", "query-request"),
        ("query-response", "update"), ("success", None),
    ]
    device = Device.objects.get(kid=agent.kid.hex())
    assert device.registration == Device.Registration.ATTESTED
    assert device.attributes.get("hwmodel")
    assert InstalledComponent.objects.filter(device=device).exists()
    assert len(agent.installed_components()) == 1

    again = agent.request_policy_check(portal)
    assert again.ok and again.messages == [("empty", "query-request"), ("query-response", None)]


def test_verifier_down_answers_503_and_the_retry_succeeds(tmp_path, portal, monkeypatch):
    agent = attesting_agent(tmp_path / "b")

    def down(**kwargs):
        raise VerifierUnavailable("connection refused")

    real = attestation.request_appraisal_and_wait
    monkeypatch.setattr(attestation, "request_appraisal_and_wait", down)
    result = agent.request_policy_check(portal)
    assert result.http_status == 503 and result.retry_after and result.retry_after > 0
    assert not Device.objects.filter(kid=agent.kid.hex()).exists()

    monkeypatch.setattr(attestation, "request_appraisal_and_wait", real)
    retry = agent.request_policy_check(portal)
    assert retry.ok, retry.to_json()
    assert len(agent.installed_components()) == 1


def test_tampered_evidence_leaves_the_agent_untrusted_with_nothing_installed(tmp_path, portal):
    agent = attesting_agent(tmp_path / "c", register_attester=False)  # Evidence from an unendorsed TEE
    result = agent.request_policy_check(portal)
    assert agent.installed_components() == []
    # TEEP 7.1.1.1 case 1: the TAM answers an Update carrying ERR_ATTESTATION_REQUIRED.
    assert [e["err_name"] for e in result.tam_errors] == ["ERR_ATTESTATION_REQUIRED"], result.tam_errors
    device = Device.objects.filter(kid=agent.kid.hex()).first()
    assert device is None or device.state == Device.State.UNTRUSTED
    assert not InstalledComponent.objects.exists()
