"""Recording, freshness, the Passport model check, the Celery task and the deadline wait."""

import os
import threading
import time
from datetime import timedelta

import cbor2
import pytest
from django.utils import timezone

from apps.attestation import services, tasks
from apps.attestation.appraisal import Appraisal, VerifierUnavailable
from apps.teep.wire.evidence import EVIDENCE_MEDIA_TYPE
from apps.attestation.models import AttestationRecord, AttestationRequest
from apps.audit.models import AuditEvent
from apps.devices.models import Device
from apps.devices.services import register_agent
from apps.teep.wire import eat
from apps.teep.wire.keys import TeepKey

pytestmark = pytest.mark.django_db


def request(world, challenge, payload=None, **kwargs):
    """The same payload for the same challenge, as an agent repeating its QueryResponse sends."""
    cache = world.__dict__.setdefault("payloads", {})
    if payload is None:
        payload = cache.get(challenge) or world.evidence(challenge)[0]
    cache[challenge] = payload
    media_type = EVIDENCE_MEDIA_TYPE
    return services.request_appraisal_and_wait(
        evidence=payload,
        media_type=media_type,
        challenge=challenge,
        agent_key=world.agent,
        **kwargs,
    )


# --- recording and freshness --------------------------------------------------------------


def test_affirming_appraisal_through_the_task_trusts_the_key(world, challenge):
    appraisal = request(world, challenge)
    assert appraisal.affirming and appraisal.record_id
    device = Device.objects.get(kid=world.agent.kid.hex())
    assert (
        device.registration == Device.Registration.ATTESTED and device.state == Device.State.ACTIVE
    )
    assert device.ueid == appraisal.claims["ueid"]
    assert TeepKey.from_cose_key(bytes(device.public_key)) == world.agent.public()
    record = AttestationRecord.objects.get(pk=appraisal.record_id)
    assert (
        record.device == device and record.backend == "builtin" and record.request.state == "done"
    )
    assert services.is_attestation_fresh(device) and services.is_attestation_fresh(
        world.agent.kid.hex()
    )
    assert AuditEvent.objects.filter(action="attestation.appraised", outcome="ok").count() == 1


def test_failed_appraisal_marks_a_known_device_untrusted_and_creates_no_device_for_a_new_key(
    world, challenge
):
    bad = os.urandom(32)
    payload, _ = world.evidence(bad)
    result = services.request_appraisal_and_wait(
        evidence=payload, media_type=EVIDENCE_MEDIA_TYPE, challenge=challenge, agent_key=world.agent
    )
    assert result.status == "contraindicated"
    assert not Device.objects.filter(kid=world.agent.kid.hex()).exists()
    assert (
        AttestationRecord.objects.for_kid(world.agent.kid.hex()).get().status == "contraindicated"
    )

    known = TeepKey.generate()
    device = register_agent(public_key_bytes=known.public_pem())
    services.record_appraisal(
        device, Appraisal(status="contraindicated", backend="builtin", reasons=["x"])
    )
    device.refresh_from_db()
    assert device.state == Device.State.UNTRUSTED and not services.is_attestation_fresh(device)


def test_freshness_follows_the_validity_and_the_latest_appraisal(world, settings):
    kid = world.agent.kid.hex()
    assert not services.is_attestation_fresh(kid)
    services.record_appraisal(
        kid, Appraisal(status="affirming", backend="builtin"), agent_key=world.agent
    )
    assert services.is_attestation_fresh(kid)
    settings.ATTESTATION_VALIDITY_SECONDS = 60
    assert not services.is_attestation_fresh(kid, now=timezone.now() + timedelta(seconds=61))
    # A Verifier error appraises nothing: trust stays; a contraindicated result ends it.
    services.record_appraisal(
        kid, Appraisal(status="error", backend="veraison"), update_device=False
    )
    assert services.is_attestation_fresh(kid)
    services.record_appraisal(kid, Appraisal(status="contraindicated", backend="builtin"))
    assert not services.is_attestation_fresh(kid)
    assert Device.objects.get(kid=kid).state == Device.State.UNTRUSTED


def test_fleet_summary_counts_latest_status_and_lists_stale_devices(world):
    fresh, stale, never = TeepKey.generate(), TeepKey.generate(), TeepKey.generate()
    services.record_appraisal(
        fresh.kid.hex(), Appraisal(status="affirming", backend="builtin"), agent_key=fresh
    )
    services.record_appraisal(
        stale.kid.hex(), Appraisal(status="affirming", backend="builtin"), agent_key=stale
    )
    AttestationRecord.objects.filter(agent_kid=stale.kid.hex()).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    register_agent(public_key_bytes=never.public_pem())
    summary = services.fleet_summary()
    assert summary["counts"] == {"affirming": 2, "never": 1}
    assert [d.kid for d in summary["stale"]] == [stale.kid.hex()]


# --- Passport model through the service ------------------------------------------------------


def test_check_attestation_result_uses_registered_verifier_keys(db):
    verifier, agent = TeepKey.generate(), TeepKey.generate("ed25519")
    payload = eat.build_eat(
        {
            eat.CNF: {eat.CNF_KID: agent.kid},
            eat.IAT: int(time.time()),
            eat.UEID: b"\x01" + b"u" * 16,
        },
        verifier,
    )
    refused = services.check_attestation_result(payload=payload, agent_key=agent)
    assert refused.status == "contraindicated" and "no trusted Verifier key" in refused.reason
    services.register_attestation_key(
        public_key_bytes=verifier.public_pem(), name="v", purpose="verifier"
    )
    accepted = services.check_attestation_result(payload=payload, agent_key=agent)
    assert (
        accepted.affirming
        and accepted.model == "attestation-result"
        and accepted.claims["ueid"].startswith("01")
    )
    stored = services.record_appraisal(agent.kid.hex(), accepted, agent_key=agent)
    assert AttestationRecord.objects.get(pk=stored.record_id).model == "attestation-result"


def test_passport_nonce_is_single_use(db):
    verifier, agent = TeepKey.generate(), TeepKey.generate()
    services.register_attestation_key(
        public_key_bytes=verifier.public_pem(), name="v", purpose="verifier"
    )
    token = os.urandom(16)
    payload = eat.build_eat({eat.CNF: {eat.CNF_KID: agent.kid}, eat.EAT_NONCE: token}, verifier)
    assert services.check_attestation_result(
        payload=payload, agent_key=agent, expected_nonce=token
    ).affirming
    again = services.check_attestation_result(
        payload=payload, agent_key=agent, expected_nonce=token
    )
    assert again.status == "contraindicated" and "replay" in again.reason


# --- the Celery task -----------------------------------------------------------------------


def _pending_request(world, challenge):
    payload, media_type = world.evidence(challenge)
    return AttestationRequest.objects.create(
        agent_kid=world.agent.kid.hex(),
        agent_public_key=cbor2.dumps(world.agent.public().to_cose_key()),
        evidence=payload,
        evidence_digest="x",
        media_type=media_type,
        challenge=challenge,
        challenge_hash=services.challenge_hash(challenge),
        backend="builtin",
    )


def test_the_task_is_idempotent(world, challenge):
    pending = _pending_request(world, challenge)
    assert tasks.verify_evidence.delay(pending.pk) is not None
    assert AttestationRecord.objects.count() == 1
    tasks.verify_evidence.delay(pending.pk)  # at-least-once delivery: a second run changes nothing
    tasks.verify_evidence(pending.pk)
    assert AttestationRecord.objects.count() == 1
    pending.refresh_from_db()
    assert pending.state == "done" and pending.attempts == 1


class FlakyVerifier:
    name = "builtin"

    def __init__(self, failures):
        self.failures = failures
        self.calls = 0

    def appraise(self, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise VerifierUnavailable("connection refused")
        from apps.attestation.verifiers.builtin import BuiltinVerifier

        return BuiltinVerifier().appraise(**kwargs)


@pytest.fixture
def worker_like_retries(celery_eager):
    """Eager tasks that retry in place, as a worker would (eager propagation raises Retry)."""
    previous = celery_eager.conf.task_eager_propagates
    celery_eager.conf.task_eager_propagates = False
    yield
    celery_eager.conf.task_eager_propagates = previous


def test_the_task_retries_on_verifier_unavailable(
    world, challenge, monkeypatch, worker_like_retries
):
    flaky = FlakyVerifier(failures=2)
    monkeypatch.setattr(services, "get_verifier", lambda: flaky)
    pending = _pending_request(world, challenge)
    tasks.verify_evidence.delay(pending.pk)
    pending.refresh_from_db()
    assert flaky.calls == 3 and pending.attempts == 3 and pending.state == "done"
    assert AttestationRecord.objects.get().status == "affirming"


def test_the_task_gives_up_after_max_retries_and_stores_nothing(
    world, challenge, monkeypatch, worker_like_retries
):
    flaky = FlakyVerifier(failures=100)
    monkeypatch.setattr(services, "get_verifier", lambda: flaky)
    pending = _pending_request(world, challenge)
    tasks.verify_evidence.delay(pending.pk)
    pending.refresh_from_db()
    assert flaky.calls == tasks.MAX_RETRIES + 1 and pending.state == "unavailable"
    assert "connection refused" in pending.last_error
    assert not AttestationRecord.objects.exists() and not Device.objects.exists()


def test_unreachable_verifier_in_eager_mode_is_503_and_nothing_stored(
    world, challenge, monkeypatch
):
    flaky = FlakyVerifier(failures=100)
    monkeypatch.setattr(services, "get_verifier", lambda: flaky)
    with pytest.raises(VerifierUnavailable):
        request(world, challenge)
    assert flaky.calls == 1  # no worker to retry in eager mode: the agent starts again
    assert AttestationRequest.objects.get().state == "unavailable"
    assert not AttestationRecord.objects.exists() and not Device.objects.exists()
    with pytest.raises(VerifierUnavailable):  # the same Evidence again learns the same
        request(world, challenge)


def test_a_negative_appraisal_is_not_retried(world, challenge, monkeypatch):
    calls = []
    real = services.get_verifier

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(services, "get_verifier", counting)
    payload, media_type = world.evidence(os.urandom(32))
    result = services.request_appraisal_and_wait(
        evidence=payload, media_type=media_type, challenge=challenge, agent_key=world.agent
    )
    assert result.status == "contraindicated" and len(calls) == 1


# --- waiting with a deadline -----------------------------------------------------------------


def test_past_the_deadline_none_then_the_stored_result_on_the_next_call(
    world, challenge, monkeypatch
):
    queued = []
    monkeypatch.setattr(
        tasks.verify_evidence, "delay", lambda request_id: queued.append(request_id)
    )
    started = time.monotonic()
    assert request(world, challenge, deadline_seconds=0.3) is None  # "503, Retry-After"
    assert 0.3 <= time.monotonic() - started < 2
    assert not services.is_attestation_fresh(world.agent.kid.hex())
    tasks.verify_evidence(queued[0])  # the worker gets to it
    assert services.is_attestation_fresh(world.agent.kid.hex())
    again = request(
        world, challenge, deadline_seconds=0.3
    )  # the agent sends the same Evidence again
    assert again.affirming and queued == [queued[0]]  # not queued twice


@pytest.mark.django_db(transaction=True)
def test_waiting_sees_a_result_stored_by_a_slow_worker_in_time(world, challenge, monkeypatch):
    def slow_worker(request_id):
        def run():
            time.sleep(0.3)
            try:
                tasks.verify_evidence(request_id)
            finally:
                from django.db import connection

                connection.close()

        threading.Thread(target=run).start()

    monkeypatch.setattr(tasks.verify_evidence, "delay", slow_worker)
    assert request(world, challenge, deadline_seconds=0.05) is None
    appraisal = request(world, challenge, deadline_seconds=5)
    assert appraisal is not None and appraisal.affirming


def test_another_payload_for_a_used_challenge_is_a_replay(world, challenge):
    assert request(world, challenge).affirming
    other, media_type = world.evidence(challenge)
    other_result = services.request_appraisal_and_wait(
        evidence=other + b"",
        media_type=media_type,
        challenge=challenge,
        agent_key=TeepKey.generate(),
    )
    assert other_result.status == "contraindicated" and "replay" in other_result.reason
    # A challenge consumed by the synchronous path cannot be used through the task either.
    used = os.urandom(32)
    payload, _ = world.evidence(used)
    services.appraise(
        evidence=payload, media_type=media_type, challenge=used, agent_key=world.agent
    )
    assert "replay" in request(world, used).reason
