"""Compatibility profiles per endpoint (apps/tam/compat.py): the suite of the first
QueryRequest (TEEP_FIRST_QUERY_SUITE), its checks at startup, and SUIT reports signed with
the agent's TEEP key (libcsuit linked with libteep)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.audit.models import AuditEvent
from apps.devices.models import InstalledComponent
from apps.tam import compat, engine
from apps.teep.tam_keys import tam_keys
from apps.teep.wire import ciphersuites, cose, messages
from apps.teep.wire.errors import SuitError
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.numbering import CURRENT, PRE_26
from apps.teep.wire.suit import SuitDigest, build_report, parse_envelope, parse_report

from .conftest import TA_COMPONENT_ID
from .test_tam import connect, send

pytestmark = pytest.mark.django_db

TEEP = "application/teep+cbor"
ROOT = Path(__file__).resolve().parent.parent.parent


def first_query_request(client, path):
    response = client.post(path, data=b"", content_type=TEEP, HTTP_ACCEPT=TEEP)
    assert response.status_code == 200
    signed = cose.parse(response.content)
    numbering = PRE_26 if path.endswith("draft-25") else CURRENT
    offered = messages.decode(signed.payload, numbering).supported_teep_cipher_suites
    return signed, [ciphersuites.suite_to_wire(suite) for suite in offered]


# --- the first QueryRequest ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/tam", "/tam/draft-25"])
def test_by_default_the_first_query_request_is_a_cose_sign_with_both_mandatory_suites(client, path):
    signed, offered = first_query_request(client, path)
    assert signed.structure == "COSE_Sign" and [s.alg for s in signed.signatures] == [-9, -19]
    assert offered == [[[18, -9]], [[18, -19]]]
    assert "first_query_suite" not in AuditEvent.objects.get(action="teep.connect").detail


def test_an_endpoint_configured_for_es256_sends_a_cose_sign1_es256_and_the_other_keeps_the_default(
    client, settings
):
    settings.TEEP_FIRST_QUERY_SUITE = "/tam/draft-25=es256"

    signed, offered = first_query_request(client, "/tam/draft-25")
    assert signed.structure == "COSE_Sign1" and signed.tagged and signed.signatures[0].alg == -7
    assert offered == [[[18, -7]]]
    # Signed with the TAM's P-256 key (the one that signs ESP256), named by its kid.
    p256 = tam_keys().signing_key_for(-9)
    assert signed.signatures[0].kid == p256.kid
    cose.verify(signed, p256.public())
    assert AuditEvent.objects.get(action="teep.connect").detail["first_query_suite"] == "es256"

    default, offered = first_query_request(client, "/tam")
    assert default.structure == "COSE_Sign" and offered == [[[18, -9]], [[18, -19]]]


@pytest.mark.parametrize(
    "name, alg", [("esp256", -9), ("ed25519", -19), ("es256", -7), ("eddsa", -8)]
)
def test_each_named_suite_signs_the_first_query_request_alone(client, settings, name, alg):
    settings.TEEP_FIRST_QUERY_SUITE = f"/tam={name}"
    signed, offered = first_query_request(client, "/tam")
    assert (signed.structure, [s.alg for s in signed.signatures]) == ("COSE_Sign1", [alg])
    assert offered == [[[18, alg]]]
    key = next(k for k in tam_keys().public_keys if alg in k.algorithms)
    cose.verify(signed, key)


def test_an_agent_signing_es256_after_an_es256_first_query_request_gets_its_update(
    make_agent, trusted_app, settings
):
    settings.TEEP_FIRST_QUERY_SUITE = "/tam/draft-25=es256"
    agent = make_agent(numbering=PRE_26)
    agent.alg = -7

    answer = engine.process_connect(numbering=PRE_26, endpoint="/tam/draft-25")
    request = agent.read(answer.body)
    reply = send(agent, messages.QueryResponse(
        token=request.token, tc_list=(),
        requested_tc_list=(messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),),
    ))
    assert reply.outcome == "update"
    # Later messages use the agent's own algorithm (TEEP 8.1): a COSE_Sign1 with ES256.
    assert cose.parse(reply.body).signatures[0].alg == -7


@pytest.mark.parametrize(
    "value, message",
    [
        ("/tam/draft-25", "is not ENDPOINT=SUITE"),
        ("/tam/draft-25=", "is not ENDPOINT=SUITE"),
        ("/tam/draft-25=rs256", "unknown suite 'rs256' for /tam/draft-25; one of mandatory, esp256"),
        ("/tam/draft-24=es256", "names '/tam/draft-24', which is not a TEEP endpoint"),
        ("/tam=es256,/tam/=eddsa", "names /tam twice"),
    ],
)
def test_a_bad_profile_is_refused_with_what_is_wrong(settings, value, message):
    settings.TEEP_FIRST_QUERY_SUITE = value
    with pytest.raises(ImproperlyConfigured, match=message):
        compat.check_settings()


def test_profiles_are_read_with_spaces_case_and_slashes_forgiven(settings):
    settings.TEEP_FIRST_QUERY_SUITE = " tam/draft-25 = ES256 , /tam=mandatory "
    compat.check_settings()
    assert compat.first_query_suite_name("/tam/draft-25") == "es256"
    assert compat.first_query_suite_name("/tam") == "mandatory"
    assert compat.first_query_suite_name(None) == "mandatory"


def test_the_server_does_not_start_with_a_bad_profile():
    env = {**os.environ, "TEEP_FIRST_QUERY_SUITE": "/tam/draft-25=rs256"}
    run = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode != 0
    assert "TEEP_FIRST_QUERY_SUITE: unknown suite 'rs256'" in run.stderr


# --- SUIT reports signed with the agent's TEEP key -------------------------------------------


def update_for(agent):
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(
        token=request.token, tc_list=(),
        requested_tc_list=(messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),),
    ))
    update = agent.read(answer.body)
    return update, parse_envelope(update.manifest_list[0])


@pytest.mark.parametrize("kid", ["thumbprint", None], ids=["with-kid", "kid-less"])
def test_success_with_a_report_signed_with_the_teep_key_is_accepted_and_audited(make_agent, trusted_app, kid):
    agent = make_agent()
    update, envelope = update_for(agent)
    report = build_report(manifest_digest=envelope.digest, nonce=update.token, signing_key=agent.key,
                          kid=... if kid else None)

    answer = send(agent, messages.Success(token=update.token, suit_reports=(report,)))

    assert answer.outcome == "nothing-due"
    assert InstalledComponent.objects.get(device=agent.device).version == trusted_app
    event = AuditEvent.objects.get(action="teep.success")
    assert event.detail["suit_reports_signed_with_teep_key"] == [0]
    stored = agent.device.suit_reports.get()
    assert stored.parsed["verified_by"] == agent.device.kid


def test_report_naming_the_teep_key_but_signed_by_another_drops_the_success(make_agent, trusted_app):
    agent = make_agent()
    update, envelope = update_for(agent)
    report = build_report(manifest_digest=envelope.digest, nonce=update.token,
                          signing_key=TeepKey.generate("p256"), kid=agent.key.kid)

    answer = send(agent, messages.Success(token=update.token, suit_reports=(report,)))

    assert answer.dropped
    assert "names the agent's TEEP key as its signer (kid) but does not verify with it" in answer.reason
    assert not InstalledComponent.objects.filter(device=agent.device).exists()


def test_report_signed_with_a_separate_report_key_is_kept_as_it_was(make_agent, trusted_app):
    agent = make_agent()
    update, envelope = update_for(agent)
    report_key = TeepKey.generate("p256")
    report = build_report(manifest_digest=envelope.digest, nonce=update.token, signing_key=report_key)

    assert send(agent, messages.Success(token=update.token, suit_reports=(report,))).outcome == "nothing-due"
    assert "suit_reports_signed_with_teep_key" not in AuditEvent.objects.get(action="teep.success").detail
    assert agent.device.suit_reports.get().parsed["signature"] == "not verified"


def test_report_signed_with_teep_key_without_a_device_key_match_is_returned_unchanged():
    teep_key, other = TeepKey.generate("ed25519"), TeepKey.generate("ed25519")
    raw = build_report(manifest_digest=SuitDigest.sha256(b"m"), signing_key=other, kid=None)
    result = parse_report(raw)
    assert compat.report_signed_with_teep_key(raw, result, teep_key.public()) is result
    raw = build_report(manifest_digest=SuitDigest.sha256(b"m"), signing_key=other, kid=teep_key.kid)
    with pytest.raises(SuitError):
        compat.report_signed_with_teep_key(raw, parse_report(raw), teep_key.public())
