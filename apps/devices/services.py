"""Device state: registration, what a device reported, what is due for it, and settling
what an Update asked. Called by the TAM state machine (apps/tam/engine.py) inside the
transaction that holds the device's row lock, and by admin/commands for registration."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils.text import slugify

from apps.audit.services import record_operator_action
from apps.components.models import ComponentVersion, TrustedComponent
from apps.devices.models import DeliveryItem, Device, InstalledComponent, SuitReport, Tag
from apps.personalization import services as personalization
from apps.policies import services as policies
from apps.teep import tokens
from apps.teep.wire import component_ids
from apps.teep.wire.keys import TeepKey, load_public_key
from apps.teep.wire.suit import parse_envelope

logger = logging.getLogger(__name__)

# SUIT parameter label of image-digest in system-property-claims (SUIT manifest 11.5).
SUIT_PARAMETER_IMAGE_DIGEST = 3


class DeviceError(Exception):
    """An operator request on devices that cannot be done; the message says why."""


def lock_device(device_id: int) -> Device:
    return Device.objects.select_for_update(of=("self",)).get(pk=device_id)


def lock_snapshot(device_id: int):
    """The device's row locked, with everything a contact needs (apps/devices/snapshot.py)."""
    from apps.devices import snapshot

    return snapshot.lock_by_id(device_id)


# --- Registration -----------------------------------------------------------------------


@transaction.atomic
def register_agent(
    *, public_key_bytes: bytes, name: str = "", tags=(), accepts_kidless: bool = False, actor=None, request=None
) -> Device:
    """Register a pre-provisioned agent key (PEM or COSE_Key); its kid is the thumbprint.
    `accepts_kidless`: its agent signs without a kid (apps/tam/identify.py tries its key)."""
    try:
        key = load_public_key(public_key_bytes).public()
    except ValueError as exc:
        raise DeviceError(f"not a usable agent public key: {exc}") from None
    kid = key.kid.hex()
    if Device.objects.filter(kid=kid).exists():
        raise DeviceError(f"an agent with key id {kid} is already registered")
    device = Device.objects.create(
        kid=kid,
        public_key=_cose_key_bytes(key),
        name=name,
        accepts_kidless=accepts_kidless,
        registered_by=actor if getattr(actor, "pk", None) else None,
    )
    if tags:
        device.tags.set([Tag.objects.get_or_create(name=slugify(t))[0] for t in tags])
    record_operator_action(
        actor=actor, action="device.register", obj=device, device_kid=kid, request=request,
        after={"kid": kid, "name": name, "tags": sorted(tags), "accepts_kidless": accepts_kidless},
    )
    return device


def _cose_key_bytes(key: TeepKey) -> bytes:
    import cbor2

    return cbor2.dumps(key.to_cose_key(private=False), canonical=True)


def trust_attested_device(device: Device | None, *, kid: str, agent_key: TeepKey | None, ueid: str = "",
                          attributes: dict | None = None) -> Device | None:
    """An affirming appraisal: the key becomes a trusted device (created, registration
    "attested", when unknown; `agent_key` is needed then), active, with its attested UEID and
    attributes. Runs in the caller's transaction, row locked."""
    from django.db import IntegrityError

    if device is None:
        if agent_key is None:
            return None
        try:
            with transaction.atomic():
                device = Device.objects.create(
                    kid=kid, public_key=_cose_key_bytes(agent_key.public()),
                    registration=Device.Registration.ATTESTED, state=Device.State.ACTIVE, ueid=ueid[:66],
                )
        except IntegrityError:  # created meanwhile by another request
            device = Device.objects.get(kid=kid)
    device = lock_device(device.pk)
    changed = []
    if device.state in (Device.State.REGISTERED, Device.State.UNTRUSTED):
        device.state = Device.State.ACTIVE
        changed.append("state")
    if ueid and device.ueid != ueid[:66]:
        device.ueid = ueid[:66]
        changed.append("ueid")
    if attributes and any(device.attributes.get(k) != v for k, v in attributes.items()):
        device.attributes = {**device.attributes, **attributes}
        changed.append("attributes")  # bumps the policy epoch (a trigger): membership may change
    if changed:
        device.save(update_fields=changed)
    return device


def mark_untrusted(device: Device) -> Device:
    """A failed appraisal: the device is flagged untrusted (a retired one stays retired)."""
    device = lock_device(device.pk)
    if device.state not in (Device.State.RETIRED, Device.State.UNTRUSTED):
        device.state = Device.State.UNTRUSTED
        device.save(update_fields=["state"])
    return device


def device_public_key(device: Device) -> TeepKey:
    """The agent's key, built once per process per stored COSE_Key."""
    return cached_key_from_cose_key(bytes(device.public_key))


@functools.lru_cache(maxsize=8192)
def cached_key_from_cose_key(cose_key: bytes) -> TeepKey:
    return TeepKey.from_cose_key(cose_key)


# --- What the agent reported (QueryResponse, TEEP 4.3) ------------------------------------


@dataclass(frozen=True)
class ReportedComponent:
    component_key: str  # component_ids.component_id_key()
    image_digest: str = ""  # hex, when the claims carried suit-parameter-image-digest


def reported_components_from_tc_list(tc_list) -> list[ReportedComponent]:
    import cbor2

    reported = []
    for claims in tc_list or []:
        key = component_ids.component_id_key(claims[0])
        digest = ""
        raw_digest = claims.get(SUIT_PARAMETER_IMAGE_DIGEST)
        if isinstance(raw_digest, bytes):
            try:
                value = cbor2.loads(raw_digest)
                if isinstance(value, list) and len(value) >= 2 and isinstance(value[1], bytes):
                    digest = value[1].hex()
            except Exception:  # a malformed optional claim only loses the digest
                digest = ""
        reported.append(ReportedComponent(key, digest))
    return reported


def reported_digest(*, tc_list, requested_tc_list, unneeded_manifest_list, ext_list, selected_version,
                    signing_alg: int, numbering: str, reports=()) -> str:
    """A digest of everything a QueryResponse says about the device (the fast path of a
    policy check compares it with what the device said when nothing was due). SUIT reports
    count by (manifest digest, success): their nonce changes at every check."""
    import hashlib

    import cbor2

    summary = [
        [list(claims.items()) if isinstance(claims, dict) else claims for claims in (tc_list or [])]
        if tc_list is not None else None,
        [[info.component_id, info.tc_manifest_sequence_number, bool(info.have_binary)]
         for info in (requested_tc_list or [])],
        list(unneeded_manifest_list or []),
        list(ext_list or []),
        selected_version,
        signing_alg,
        numbering,
        sorted([result.report.manifest_digest.value.hex(), bool(result.report.success)] for _, result in reports),
    ]
    try:
        encoded = cbor2.dumps(summary, canonical=True)
    except (TypeError, ValueError, cbor2.CBOREncodeError):  # an odd claim value: never the fast path
        return ""
    return hashlib.sha256(encoded).hexdigest()


def record_reported_state(
    snap,
    world,
    *,
    tc_list,
    requested_tc_list,
    unneeded_manifest_list,
    ext_list,
    selected_version,
    signing_alg: int,
    numbering: str,
    as_of,
) -> None:
    """Replace the device's recorded state by what its QueryResponse said (row locked by the
    caller; `snap` from apps.devices.snapshot, kept up to date here). Writes only what changed;
    the device row itself is written by save_contact(). `as_of`: when the QueryRequest it
    answers was issued."""
    from apps.devices.snapshot import Held

    device = snap.device
    if tc_list is not None:
        reported = reported_components_from_tc_list(tc_list)
        new_rows, keys = [], set()
        for item in reported:
            keys.add(item.component_key)
            component = world.by_key.get(item.component_key)
            version = world.by_digest.get((component.pk, item.image_digest)) if component and item.image_digest \
                else None
            row = snap.installed.get(item.component_key)
            if row is None:
                new_rows.append(InstalledComponent(
                    device_id=device.pk, component_key=item.component_key,
                    component_id=component.pk if component else None,
                    version_id=version.pk if version else None,
                    sequence_number=version.sequence_number if version else None,
                    image_digest=item.image_digest,
                ))
                continue
            # A report without a digest keeps what a settled Update told us; write only changes.
            wanted = {"component_id": component.pk if component else None, "image_digest": item.image_digest}
            if version is not None or item.image_digest:
                wanted.update(version_id=version.pk if version else None,
                              sequence_number=version.sequence_number if version else None)
            changed = {name: value for name, value in wanted.items() if getattr(row, name) != value}
            if changed:
                InstalledComponent.objects.filter(pk=row.pk).update(**changed)
                for name, value in changed.items():
                    setattr(row, name, value)
        if new_rows:
            for created in InstalledComponent.objects.bulk_create(new_rows):
                snap.installed[created.component_key] = Held(
                    created.pk, created.component_key, created.component_id, created.version_id,
                    created.sequence_number, created.image_digest)
        gone = [key for key in snap.installed if key not in keys]
        if gone:
            InstalledComponent.objects.filter(device_id=device.pk, component_key__in=gone).delete()
            for key in gone:
                del snap.installed[key]
    device.requested_components = [
        {
            "component_key": component_ids.component_id_key(info.component_id),
            "min_sequence_number": info.tc_manifest_sequence_number,
            "have_binary": bool(info.have_binary),
        }
        for info in (requested_tc_list or [])
    ]
    device.unneeded_manifests = [component_ids.component_id_key(c) for c in (unneeded_manifest_list or [])]
    device.ext_list = list(ext_list or [])
    device.selected_version = selected_version if selected_version is not None else 0
    device.signing_alg = signing_alg
    device.numbering = numbering
    device.state_as_of = as_of


# The columns a contact may change; save_contact() writes those that did.
CONTACT_FIELDS = (
    "state", "numbering", "signing_alg", "selected_version", "first_contact_at", "last_contact_at",
    "requested_components", "unneeded_manifests", "ext_list", "state_as_of", "backoff_until",
    "last_error_code", "last_error_name", "last_error_msg", "last_error_at", "error_resolved_at",
    "agent_cipher_suites", "agent_versions", "reconciled_digest", "reconciled_epoch",
    "query_report_outcomes",
)


def save_contact(snap, now) -> None:
    """The device row after a contact: first/last contact, registered -> active, and the
    columns this contact changed (compared with the row as it was read, one UPDATE)."""
    statement = contact_statement(snap, now)
    if statement is not None:
        with connection.cursor() as cursor:
            cursor.execute(*statement)


def contact_statement(snap, now) -> tuple[str, list] | None:
    """save_contact() as a statement not yet run: the engine has it run with the exchange's
    audit row (apps/audit/services.py: one statement for both on PostgreSQL). None: nothing
    changed. The snapshot counts it as written."""
    device = snap.device
    if device.first_contact_at is None:
        device.first_contact_at = now
    device.last_contact_at = now
    if device.state == Device.State.REGISTERED:
        device.state = Device.State.ACTIVE
    before = snap.device_as_read
    changed = {name: getattr(device, name) for name in CONTACT_FIELDS if getattr(device, name) != before.get(name)}
    if not changed:
        return None
    snap.device_as_read.update(changed)
    fields = [Device._meta.get_field(name) for name in changed]
    key = (connection.vendor, *changed)
    sql = _CONTACT_UPDATE_SQL.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        sql = _CONTACT_UPDATE_SQL[key] = (
            f"UPDATE {quote(Device._meta.db_table)} SET {', '.join(f'{quote(f.column)} = %s' for f in fields)}"
            f" WHERE {quote(Device._meta.pk.column)} = %s"
        )
    return sql, [f.get_db_prep_save(changed[f.name], connection) for f in fields] + [device.pk]


_CONTACT_UPDATE_SQL: dict[tuple, str] = {}


def store_suit_reports(device: Device, message_type: str, parsed_reports) -> None:
    """parsed_reports: (raw bytes, SuitReportResult) pairs from apps.teep.wire.suit."""
    from apps.teep.wire.suit import report_to_json

    if not parsed_reports:
        return
    if message_type == "query-response":
        # Boot-time reports repeat at every check (TEEP 4.3): keep one row per change, not per
        # check. The device row (locked) remembers the newest outcome per manifest digest and
        # is written with the contact (CONTACT_FIELDS).
        latest = dict(device.query_report_outcomes or {})
        parsed_reports = [
            (raw, result) for raw, result in parsed_reports
            if latest.get(result.report.manifest_digest.value.hex(), "absent") != result.report.success
        ]
        for _, result in parsed_reports:
            latest[result.report.manifest_digest.value.hex()] = result.report.success
        device.query_report_outcomes = latest
    SuitReport.objects.bulk_create(
        SuitReport(
            device=device,
            message_type=message_type,
            raw=raw,
            parsed=report_to_json(result),
            success=result.report.success,
            summary=summarize_report(result)[:300],
            manifest_digest=result.report.manifest_digest.value.hex(),
        )
        for raw, result in parsed_reports
    )


def summarize_report(result) -> str:
    """One line for people: success, or the failing command, component and reason."""
    report = result.report
    where = report.manifest_uri or "manifest"
    if report.success:
        return f"{where}: success"
    failure = report.failure
    record = failure.record
    return (
        f"{where}: {failure.reason_name} in section {record.section} at offset {record.offset}, "
        f"component #{record.component_index} (code {failure.code})"
    )


# --- Catalogue look-ups by the keys devices report -----------------------------------------


def component_key_of(component: TrustedComponent) -> str:
    return component.component_id


def manifest_key_of(component: TrustedComponent) -> str:
    return component.manifest_component_id


def manifest_digest_of(version: ComponentVersion) -> str:
    """SHA-256 of the manifest, as SUIT reports name it in suit-reference (report 4)."""
    from apps.components.services import envelope_and_manifest_digest

    return envelope_and_manifest_digest(version.pk)[1]


# --- What is due (TEEP 7.1.1: "in any implementation specific manner") ---------------------


@dataclass
class Offer:
    """A catalogue version an Update installs: its envelope and what deliveries record."""

    version_id: int
    component_key: str
    manifest_key: str
    envelope: bytes
    manifest_digest: str


@dataclass
class DuePlan:
    installs: list[Offer] = field(default_factory=list)
    # (component id key, manifest component id key, held version (decision facts) or None, why)
    removals: list[tuple[str, str, object, str]] = field(default_factory=list)
    # (delivery kind, component id key) -> ids of the queued actions (apps.policies) it carries
    actions: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    # (PersonalizationData, envelope encrypted for this device), after the installs (TEEP E.3)
    personalizations: list = field(default_factory=list)
    # Nothing due and nothing held back: the device holds what it should (fast path).
    settled: bool = False

    def __bool__(self):
        return bool(self.installs or self.removals or self.personalizations)

    @property
    def manifest_list(self) -> list[bytes]:
        return [offer.envelope for offer in self.installs] + [env for _, env in self.personalizations]


def _offer(world, version_id: int) -> Offer:
    from apps.components.services import envelope_and_manifest_digest

    version = world.versions[version_id]
    component = world.components[version.component_id]
    envelope, digest = envelope_and_manifest_digest(version_id)
    return Offer(version_id, component.component_id, component.manifest_component_id, envelope, digest)


def compute_due(snap, world, *, now) -> DuePlan:
    """What the Update to this device carries: its desired state (policies, overrides,
    queued actions, compromised versions, what the agent requested or no longer needs)
    against what it holds. The rule is apps.policies.resolution's docstring."""
    device = snap.device
    resolution = policies.resolve_at_contact(device, now=now, snapshot=snap, world=world)
    plan = DuePlan()
    for decision in (d for d in resolution.decisions if d.due):
        if decision.action == "remove":
            plan.removals.append((decision.component_key, decision.manifest_key, decision.version, decision.reason))
            if decision.replacement is not None:  # installed after the unlink (TEEP 7.2.2)
                plan.installs.append(_offer(world, decision.replacement.pk))
                plan.actions[("install", decision.component_key)] = decision.replacement_action_ids
            plan.actions[("remove", decision.component_key)] = decision.action_ids
        else:
            plan.installs.append(_offer(world, decision.version.pk))
            plan.actions[("install", decision.component_key)] = decision.action_ids
    if snap.personalization_pending and not (device.backoff_until and device.backoff_until > now):
        _add_personalization(snap, plan, now)
    plan.settled = (not plan and resolution.settled_state and not snap.open_actions
                    and not snap.personalization_pending and not resolution.settle)
    return plan


def _add_personalization(snap, plan: DuePlan, now) -> None:
    """Personalization data waiting for this device, encrypted for it now (never before)."""
    in_flight = {d.component_key for d in snap.unsettled
                 if d.state == DeliveryItem.State.SENT and d.expires_at and d.expires_at > now}
    for data in personalization.pending_for_device(snap.device):
        if data.component.component_id in in_flight:
            continue
        try:
            envelope = personalization.build_delivery_envelope(data)
        except personalization.PersonalizationError as exc:
            logger.warning("personalization data %s not deliverable yet: %s", data.pk, exc)
            continue
        plan.personalizations.append((data, envelope))


def record_deliveries(device: Device, token: bytes, plan: DuePlan, *, expires_at) -> list[DeliveryItem]:
    common = {"device_id": device.pk, "update_token": token, "expires_at": expires_at}
    items = [
        DeliveryItem(
            kind=DeliveryItem.Kind.INSTALL, component_key=offer.component_key, manifest_key=offer.manifest_key,
            version_id=offer.version_id, manifest_digest=offer.manifest_digest, **common,
        )
        for offer in plan.installs
    ] + [
        DeliveryItem(
            kind=DeliveryItem.Kind.REMOVE, component_key=key, manifest_key=manifest_key,
            version_id=version.pk if version is not None else None, reason=why[:300], **common,
        )
        for key, manifest_key, version, why in plan.removals
    ]
    items += [
        DeliveryItem(
            kind=DeliveryItem.Kind.INSTALL, component_key=data.component.component_id,
            manifest_key=data.component.manifest_component_id,
            manifest_digest=parse_envelope(envelope).digest.value.hex(), reason="personalization data", **common,
        )
        for data, envelope in plan.personalizations
    ]
    items = DeliveryItem.objects.bulk_create(items)
    if any(plan.actions.values()):
        policies.link_deliveries(items, plan.actions, now=items[0].created_at)
    if plan.personalizations:
        carried = items[-len(plan.personalizations):]
        personalization.mark_delivered([d.pk for d, _ in plan.personalizations], [i.pk for i in carried])
    return items


# --- Settling an Update (TEEP 7.1.2) ---------------------------------------------------------


def _carried_by(snap, token: bytes):
    return [u for u in snap.unsettled if u.state == DeliveryItem.State.SENT and u.update_token == token]


def settle_success(snap, world, token: bytes, *, now) -> list:
    """A Success answering the Update of `token`: what it asked is done."""
    items = _carried_by(snap, token)
    _apply_success(snap, world, items, now=now)
    snap.device.state_as_of = now
    return items


def is_stale_report(device: Device, answered_issued_at) -> bool:
    """A QueryResponse answering a QueryRequest issued before the TAM's newest news of the
    device (delayed or reordered on the way): what it reports is out of date."""
    return device.state_as_of is not None and answered_issued_at < device.state_as_of


def reconcile_deliveries(snap, world, *, issued_before, now) -> tuple[list, list]:
    """Level-triggered reconciliation (DESIGN.md "Freshness and sessions"): the device's
    QueryResponse, just recorded, is the truth about what it holds. Every delivery issued
    before the QueryRequest it answers and not yet settled is settled by it: an install whose
    component now shows the offered version (or, when the agent reports no digest, is present)
    succeeded, a removal whose component is gone succeeded, anything else was lost on the way
    (the Update or its answer) and is due again. Their Update tokens are closed, so a late
    Success or Error for them is refused. Returns (succeeded, lost)."""
    items = [u for u in snap.unsettled if u.created_at < issued_before]
    if not items:
        return [], []
    held = dict(snap.installed)
    succeeded, lost = [], []
    for item in sorted(items, key=lambda i: i.kind != DeliveryItem.Kind.INSTALL):  # installs first
        replaced = any(i.update_token == item.update_token and i.component_key == item.component_key
                       and i.kind == DeliveryItem.Kind.INSTALL for i in succeeded)
        shown = _report_shows(world, item, held.get(item.component_key), replaced=replaced)
        (succeeded if shown else lost).append(item)
    _apply_success(snap, world, succeeded, now=now)
    if lost:
        reason = "not applied: the device's next report did not show it (Update or answer lost)"
        DeliveryItem.objects.filter(pk__in=[i.pk for i in lost]).update(
            state=DeliveryItem.State.LOST, settled_at=now, reason=reason)
        _drop_unsettled(snap, lost)
        if _carries_actions(snap, lost):
            policies.settle_lost(lost, now=now)
        carried_data = [i.pk for i in lost if i.kind == DeliveryItem.Kind.INSTALL and i.version_id is None]
        if carried_data:
            personalization.requeue_delivery_items(carried_data, "the Update carrying it was not applied")
    tokens.close([i.update_token for i in items if i.update_token], device_id=snap.device.pk, now=now)
    return succeeded, lost


def _carries_actions(snap, items) -> bool:
    ids = {i.pk for i in items}
    return any(a.delivery_id in ids for a in snap.actions)


def _drop_unsettled(snap, items) -> None:
    ids = {i.pk for i in items}
    snap.unsettled = [u for u in snap.unsettled if u.pk not in ids]


def _report_shows(world, item, held, *, replaced: bool = False) -> bool:
    if item.kind == DeliveryItem.Kind.REMOVE:
        # Gone, or replaced by the install the same Update carried (unlinked first, TEEP 7.2.2).
        return held is None or replaced or (
            item.version_id is not None and held.version_id is not None and held.version_id != item.version_id)
    if held is None:
        return False
    version = world.versions.get(item.version_id) if item.version_id else None
    if version is None or not held.image_digest:
        # Personalization data, or an agent that reports no digest: presence is all it says.
        return True
    if held.image_digest == world.digests.get(version.pk):
        return True
    return held.sequence_number is not None and held.sequence_number >= version.sequence_number


def _apply_success(snap, world, items, *, now) -> None:
    """Record what succeeded deliveries did on the device (its components) and settle them."""
    from apps.devices.snapshot import Held

    if not items:
        return
    device = snap.device
    # Removals first: an Update that unlinks a version and installs its replacement (7.2.2).
    for item in sorted(items, key=lambda i: i.kind != DeliveryItem.Kind.REMOVE):
        version = world.versions.get(item.version_id) if item.version_id else None
        if item.kind == DeliveryItem.Kind.INSTALL and version is not None:
            values = {"component_id": version.component_id, "version_id": version.pk,
                      "sequence_number": version.sequence_number, "image_digest": world.digests.get(version.pk, "")}
            row = snap.installed.get(item.component_key)
            if row is not None:
                InstalledComponent.objects.filter(pk=row.pk).update(**values)
                snap.installed[item.component_key] = Held(row.pk, item.component_key, **values)
            else:
                created = InstalledComponent.objects.create(device_id=device.pk, component_key=item.component_key,
                                                            **values)
                snap.installed[item.component_key] = Held(created.pk, item.component_key, **values)
        elif item.kind == DeliveryItem.Kind.INSTALL:  # personalization data (no catalogue version)
            personalization.settle_delivery_items([item.pk], True)
        elif item.kind == DeliveryItem.Kind.REMOVE:
            if item.component_key in snap.installed:
                InstalledComponent.objects.filter(device_id=device.pk, component_key=item.component_key).delete()
                del snap.installed[item.component_key]
            device.unneeded_manifests = [m for m in device.unneeded_manifests if m != item.manifest_key]
    DeliveryItem.objects.filter(pk__in=[i.pk for i in items]).update(
        state=DeliveryItem.State.SUCCEEDED, settled_at=now
    )
    _drop_unsettled(snap, items)
    if _carries_actions(snap, items):
        policies.settle_succeeded(items, now=now)
    if device.last_error_at and not device.error_resolved_at:
        device.error_resolved_at = now


def settle_failure(snap, world, token: bytes, *, reason: str, retryable: bool, failed_digests: dict[str, str],
                   now) -> None:
    """Mark what the Update asked as failed; reasons per manifest digest from SUIT reports.

    Never removes or reinstalls anything by itself (DESIGN.md: no automatic destructive
    action on protocol errors). Queued actions they carried go back to the queue, up to the
    retry limit (apps.policies.services.settle_failed)."""
    items = _carried_by(snap, token)
    if failed_digests:
        # A SUIT report names a manifest that failed: the agent reached the install step, which
        # it only does after unlinking every unneeded manifest without error (TEEP 7.2.2).
        removals = [i for i in items if i.kind == DeliveryItem.Kind.REMOVE]
        _apply_success(snap, world, removals, now=now)
        items = [i for i in items if i.kind != DeliveryItem.Kind.REMOVE]
    for item in items:
        item.state, item.retryable, item.settled_at = DeliveryItem.State.FAILED, retryable, now
        item.reason = failed_digests.get(item.manifest_digest, reason)[:300]
        DeliveryItem.objects.filter(pk=item.pk).update(
            state=item.state, retryable=retryable, reason=item.reason, settled_at=now,
        )
    _drop_unsettled(snap, items)
    if _carries_actions(snap, items):
        policies.settle_failed(items, now=now)
    carried_data = [i.pk for i in items if i.kind == DeliveryItem.Kind.INSTALL and i.version_id is None]
    if carried_data:
        if retryable:
            personalization.requeue_delivery_items(carried_data, reason)
        else:
            personalization.settle_delivery_items(carried_data, False, reason)


def record_agent_error(device: Device, *, code: int, name: str, message: str | None,
                       cipher_suites=None, versions=None, now) -> None:
    """The device's row (locked, written by save_contact()) remembers the Error."""
    device.last_error_code = code
    device.last_error_name = name
    device.last_error_msg = (message or "")[:200]
    device.last_error_at, device.error_resolved_at = now, None
    if cipher_suites is not None:
        device.agent_cipher_suites = [[list(op) for op in suite] for suite in cipher_suites]
    if versions is not None:
        device.agent_versions = list(versions)
    if name == "ERR_TEMPORARY_ERROR":
        device.backoff_until = now + timedelta(seconds=settings.TEEP_TEMPORARY_ERROR_BACKOFF_SECONDS)
    device.state_as_of = now


# --- Lifecycle: retiring a device (operators; the admin and the API) ------------------------------


@transaction.atomic(durable=True)
def retire_device(device: Device, *, actor, reason: str, request=None) -> Device:
    """Take a device out of service: the TAM drops its TEEP messages from now on (with an
    audit reason, apps/teep/tam.py), it leaves rollout and fleet counts, and its queued
    actions that can no longer be delivered are cancelled. Nothing is deleted: its history
    stays, and unretire_device() brings it back."""
    reason = (reason or "").strip()
    if not reason:
        raise DeviceError("a reason is required to retire a device")
    device = lock_device(device.pk)
    if device.state == Device.State.RETIRED:
        raise DeviceError(f"{device} is already retired")
    before = {"state": device.state}
    device.state = Device.State.RETIRED
    device.save(update_fields=["state"])
    cancelled = policies.cancel_actions_of_retired_device(device, reason=reason)
    record_operator_action(
        actor=actor, action="device.retire", obj=device, device_kid=device.kid, reason=reason,
        request=request, before=before, after={"state": device.state},
        detail={"cancelled_actions": cancelled},
    )
    return device


@transaction.atomic(durable=True)
def unretire_device(device: Device, *, actor, reason: str, request=None) -> Device:
    """Back in service, in the state it had when it was retired (registered if it never
    contacted the TAM); its next RequestPolicyCheck is answered again."""
    from apps.audit.models import AuditEvent

    reason = (reason or "").strip()
    if not reason:
        raise DeviceError("a reason is required to bring a device back into service")
    device = lock_device(device.pk)
    if device.state != Device.State.RETIRED:
        raise DeviceError(f"{device} is not retired")
    # The retirement's audit row says what the device was and which actions it cancelled.
    retired = (
        AuditEvent.objects.filter(action="device.retire", object_type=Device._meta.label,
                                  object_id=str(device.pk))
        .order_by("-created_at", "-id").values_list("detail", flat=True).first()
    ) or {}
    previous = (retired.get("before") or {}).get("state")
    if previous not in (Device.State.REGISTERED, Device.State.ACTIVE, Device.State.UNTRUSTED):
        previous = Device.State.ACTIVE if device.last_contact_at else Device.State.REGISTERED
    device.state = previous
    device.save(update_fields=["state"])
    reopened = policies.reopen_actions_of_unretired_device(device, retired.get("cancelled_actions") or [])
    record_operator_action(
        actor=actor, action="device.unretire", obj=device, device_kid=device.kid, reason=reason,
        request=request, before={"state": Device.State.RETIRED}, after={"state": device.state},
        detail={"reopened_actions": reopened},
    )
    return device


@transaction.atomic
def update_device_labels(device: Device, *, name: str, tags, actor, request=None,
                         accepts_kidless: bool | None = None) -> Device:
    """An operator renames a device, changes its tags or its kid-less flag (the admin's device
    form); audited. Tags decide group membership, so this can change what policy asks of the
    device. `accepts_kidless` None: unchanged."""
    device = lock_device(device.pk)
    before = {"name": device.name, "tags": sorted(device.tags.values_list("name", flat=True))}
    after = {"name": name, "tags": sorted(t.name for t in tags)}
    if accepts_kidless is not None and accepts_kidless != device.accepts_kidless:
        before["accepts_kidless"], after["accepts_kidless"] = device.accepts_kidless, accepts_kidless
        device.accepts_kidless = accepts_kidless
    device.name = name
    device.save(update_fields=["name", "accepts_kidless"])
    device.tags.set(list(tags))
    if after != before:
        record_operator_action(
            actor=actor, action="device.change", obj=device, device_kid=device.kid, request=request,
            before=before, after=after,
        )
    return device
