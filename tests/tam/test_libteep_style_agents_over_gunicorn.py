"""Agents in the field on `/tam/draft-25`, over real HTTP against gunicorn (issue 12): the
product agent in each legacy mode it can emulate (and all of them at once, "libteep-style")
installs and then removes a Trusted Component.

The server runs with the configuration README "Serving older agents" gives a vendor of a
libteep-style agent: the first QueryRequest of `/tam/draft-25` is a COSE_Sign1 signed with
ES256 (TEEP_FIRST_QUERY_SUITE), kid-less agents registered with `--kidless` are recognised by
their signature, and their fixed Host is admitted on the TEEP paths. `/tam` keeps the
default: a COSE_Sign with ESP256 and Ed25519 (TEEP 8.1)."""

import pytest
from django.db import connection
from django.urls import reverse

from apps.agent import transport
from apps.agent.agent import Behaviour, TeepAgent
from apps.audit.models import AuditEvent
from apps.devices.models import Device, InstalledComponent
from apps.devices.services import register_agent
from apps.teep.tam_keys import tam_keys
from apps.teep.wire import ciphersuites, cose, messages
from apps.teep.wire.numbering import CURRENT, PRE_26

from .conftest import TA_COMPONENT_ID
from .gunicorn_portal import gunicorn_portal
from .test_field_agents_over_gunicorn import FIXED_HOST, hello_ta, portal  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)

DRAFT_25 = "/tam/draft-25"

LEGACY_MODES = {
    "omit_kid": Behaviour(omit_kid=True),
    "legacy_es256": Behaviour(legacy_es256=True),
    "legacy_selected_cipher_suite_label": Behaviour(legacy_selected_cipher_suite_label=True),
    "empty_tc_list": Behaviour(empty_tc_list=True),
    "verify_only_sign1_es256": Behaviour(verify_only_sign1_es256=True),
    "chunked_body": Behaviour(chunked_body=True),
    "fixed_host": Behaviour(fixed_host=FIXED_HOST),
    "sign_reports_with_teep_key": Behaviour(sign_reports_with_teep_key=True),
    "libteep-style": Behaviour(
        omit_kid=True,
        legacy_es256=True,
        legacy_selected_cipher_suite_label=True,
        empty_tc_list=True,
        verify_only_sign1_es256=True,
        chunked_body=True,
        fixed_host=FIXED_HOST,
        sign_reports_with_teep_key=True,
    ),
}


@pytest.fixture(scope="module")
def gunicorn_url(django_db_setup, tmp_path_factory):
    """Overrides the module fixture of test_field_agents_over_gunicorn: the settings of a
    vendor serving libteep-style agents."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: gunicorn reads the test database from another process")
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with gunicorn_portal(
        log,
        TEEP_ALLOWED_HOSTS=FIXED_HOST,
        TEEP_FIRST_QUERY_SUITE=f"{DRAFT_25}=es256",
    ) as url:
        yield url


def field_agent(tmp_path, behaviour: Behaviour, numbering=PRE_26) -> TeepAgent:
    """The agent, provisioned with the TAM's keys, and registered as its vendor would:
    `register_agent --kidless` for an agent that sends no kid."""
    agent = TeepAgent(tmp_path / "agent", numbering=numbering, behaviour=behaviour)
    for key in tam_keys().public_keys:
        agent.add_tam_key(key)
    register_agent(
        public_key_bytes=agent.public_key_path.read_bytes(),
        name="field-agent",
        accepts_kidless=behaviour.omit_kid,
    )
    return agent


def install_then_remove(agent: TeepAgent, tam_uri: str, version) -> None:
    agent.request_ta(TA_COMPONENT_ID)
    result = agent.request_policy_check(tam_uri)
    assert result.ok, result.to_json()
    # Recognised at once: no attestation round trip, the QueryResponse got the Update.
    assert result.messages[:3] == [
        ("empty", "query-request"),
        ("query-response", "update"),
        ("success", None),
    ], result.to_json()
    assert [c.sequence_number for c in agent.installed_components()] == [1]
    assert InstalledComponent.objects.get(device__kid=agent.kid.hex()).version == version

    agent.unrequest_ta(TA_COMPONENT_ID)
    result = agent.request_policy_check(tam_uri)
    assert result.ok, result.to_json()
    assert agent.installed_components() == []
    assert not InstalledComponent.objects.filter(device__kid=agent.kid.hex()).exists()


@pytest.mark.parametrize("mode", list(LEGACY_MODES))
def test_agent_in_a_legacy_mode_installs_then_removes_on_draft_25(tmp_path, portal, hello_ta, mode):
    agent = field_agent(tmp_path, LEGACY_MODES[mode])
    install_then_remove(agent, portal + DRAFT_25, hello_ta)
    # Every exchange of the agent is on its device's record, none dropped or unattributed.
    events = AuditEvent.objects.filter(action__startswith="teep.").exclude(action="teep.connect")
    assert events.exists()
    assert set(events.values_list("device_kid", flat=True)) == {agent.kid.hex()}
    assert not events.filter(outcome="dropped").exists(), list(events.values_list("reason", flat=True))
    behaviour = LEGACY_MODES[mode]
    if behaviour.omit_kid:
        assert {e.detail.get("kid") for e in events} == {"absent"}
    if behaviour.sign_reports_with_teep_key:
        # The Success's report (the install) and the next QueryResponse's (what is installed).
        assert events.filter(action="teep.success", detail__suit_reports_signed_with_teep_key=[0]).exists()


def test_libteep_style_agent_attempts_show_on_its_device_page(tmp_path, portal, hello_ta, admin_client):
    agent = field_agent(tmp_path, LEGACY_MODES["libteep-style"])
    install_then_remove(agent, portal + DRAFT_25, hello_ta)
    device = Device.objects.get(kid=agent.kid.hex())
    page = admin_client.get(reverse("admin:devices_device_change", args=[device.pk])).content.decode()
    assert "teep.query-response" in page and "teep.success" in page
    assert "kid-less agent" in page.lower()  # the flag, with the device's protocol facts


def test_first_query_request_follows_the_endpoint_profile(portal):
    """/tam/draft-25 is configured for ES256; /tam keeps TEEP 8.1's COSE_Sign."""
    configured = cose.parse(transport.post_teep(portal + DRAFT_25, b"").body)
    default = cose.parse(transport.post_teep(portal + "/tam", b"").body)

    assert (configured.structure, [s.alg for s in configured.signatures]) == ("COSE_Sign1", [-7])
    assert (default.structure, [s.alg for s in default.signatures]) == ("COSE_Sign", [-9, -19])
    assert offered_suites(configured.payload, PRE_26) == [[[18, -7]]]
    assert offered_suites(default.payload, CURRENT) == [[[18, -9]], [[18, -19]]]


def offered_suites(payload: bytes, numbering) -> list:
    request = messages.decode(payload, numbering)
    return [ciphersuites.suite_to_wire(suite) for suite in request.supported_teep_cipher_suites]
