"""A small fleet with a bit of everything the dashboard counts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.attestation.models import AttestationRecord
from apps.audit.services import record_exchange
from apps.components.models import ComponentVersion
from apps.devices.models import DeliveryItem, InstalledComponent
from apps.policies import services as policies
from tests.components.factories import TrustedComponentFactory
from tests.policies.factories import DeviceFactory


def version_of(component, n, state="released"):
    return ComponentVersion.objects.create(
        component=component,
        version_label=f"{n}.0",
        sequence_number=n,
        envelope=b"\xa0",
        envelope_sha256=f"{n:064x}",
        delivery="uri",
        state=state,
        released_at=timezone.now() if state != "draft" else None,
    )


def install(device, version=None, component=None):
    component = component or version.component
    return InstalledComponent.objects.create(
        device=device,
        component_key=component.component_id,
        component=component,
        version=version,
        sequence_number=version.sequence_number if version else None,
    )


def attest(device, status, age=timedelta(0)):
    record = AttestationRecord.objects.create(
        device=device, agent_kid=device.kid, backend="builtin", status=status
    )
    AttestationRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - age)
    return record


@pytest.fixture
def fleet(db):
    """Five devices: a fresh one, one seen 3 days ago, one never seen, an untrusted one, a
    retired one; two components; one compromise; a failure of each kind."""
    now = timezone.now()
    fresh = DeviceFactory(name="fresh", state="active", last_contact_at=now - timedelta(minutes=30))
    older = DeviceFactory(name="older", state="active", last_contact_at=now - timedelta(days=3))
    never = DeviceFactory(name="never", state="registered")
    shady = DeviceFactory(name="shady", state="untrusted", last_contact_at=now - timedelta(hours=2))
    retired = DeviceFactory(name="gone", state="retired", last_contact_at=now - timedelta(days=30))

    attest(fresh, "affirming")
    attest(older, "warning", age=timedelta(days=3))
    attest(older, "affirming", age=timedelta(days=2))  # latest, but older than the validity: stale
    attest(shady, "contraindicated")
    attest(never, "error")  # a Verifier error appraises nothing: still never attested
    attest(retired, "affirming")  # retired devices are not counted

    storage = TrustedComponentFactory(name="storage-ta")
    v1, v2 = version_of(storage, 1), version_of(storage, 2)
    wallet = TrustedComponentFactory(name="wallet-ta")
    w1 = version_of(wallet, 1)
    install(fresh, v2)
    install(older, v1)
    install(shady, v1)
    install(never, None, component=storage)  # a version the catalogue does not know
    install(fresh, w1)

    response = policies.mark_compromised(v1, actor=None, reason="key leaked")
    policies.fan_out_compromise_batch(response.pk)

    DeliveryItem.objects.create(
        device=fresh,
        kind="install",
        state="failed",
        component_key=storage.component_id,
        version=v2,
        reason="ERR_MANIFEST_PROCESSING_FAILED: boom",
        settled_at=now,
    )
    DeliveryItem.objects.create(
        device=fresh,
        kind="install",
        state="succeeded",
        component_key=wallet.component_id,
        version=w1,
        settled_at=now,
    )
    record_exchange(
        action="teep.query-response",
        outcome="dropped",
        device_kid=older.kid,
        reason="signature does not verify",
    )
    record_exchange(
        action="teep.error",
        outcome="nothing-due",
        device_kid=shady.kid,
        reason="agent reported ERR_TEMPORARY_ERROR",
        detail={"err_name": "ERR_TEMPORARY_ERROR", "err_msg": "busy"},
    )
    record_exchange(action="teep.query-response", outcome="nothing-due", device_kid=fresh.kid)
    return {
        "now": now,
        "devices": [fresh, older, never, shady, retired],
        "v1": v1,
        "v2": v2,
        "w1": w1,
        "storage": storage,
        "wallet": wallet,
        "response": response,
    }
