"""What every policy check needs from the catalogue and the policies, kept per process until
the policy epoch (apps/policies/epoch.py) changes.

A check reads the epoch with its device (apps/devices/snapshot.py); when a worker already
holds the world of that epoch, deciding what is due costs no statement. The world is loaded
after the epoch was read, so it is never older than the epoch it is filed under; a worker
that loads a newer one than it needed only sees a change a moment early.

Envelopes are large: they are not part of the world but read on demand when an Update
carries them (apps.components.services.envelope_and_manifest_digest keeps them per process).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

from apps.components.models import ComponentVersion, TrustedComponent
from apps.policies import decision


@dataclass
class World:
    epoch: int | None
    groups: list = field(default_factory=list)  # DeviceGroup, rules and tags prefetched
    policies_by_group: dict[int, list] = field(default_factory=dict)  # group pk -> [Policy]
    components: dict[int, decision.Component] = field(default_factory=dict)
    by_key: dict[str, decision.Component] = field(default_factory=dict)
    by_manifest_key: dict[str, decision.Component] = field(default_factory=dict)
    versions: dict[int, decision.Version] = field(default_factory=dict)
    released: dict[int, tuple[decision.Version, ...]] = field(default_factory=dict)  # newest first
    by_digest: dict[tuple[int, str], decision.Version] = field(default_factory=dict)  # highest sequence
    digests: dict[int, str] = field(default_factory=dict)  # version pk -> binary SHA-256 (hex)
    compromises: dict[int, tuple[int, int | None]] = field(default_factory=dict)  # id -> (version, replacement)
    replacement_of: dict[int, int | None] = field(default_factory=dict)  # compromised version -> replacement

    def groups_for(self, tag_ids: set[int], attributes: dict) -> list:
        from apps.policies.resolution import group_matches

        return [g for g in self.groups if group_matches(g, tag_ids, attributes)]


_lock = threading.Lock()
_current: World | None = None


def for_epoch(epoch: int | None) -> World:
    """The world of `epoch` (loaded now if this process holds another one). None (no epoch
    row: a flushed database) loads it afresh every time and keeps nothing."""
    global _current
    world = _current
    if world is not None and epoch is not None and world.epoch == epoch:
        return world
    loaded = load(epoch)
    from apps.components.services import forget_cached_envelopes

    with _lock:
        forget_cached_envelopes()  # envelopes are kept per world too
        _current = loaded if epoch is not None else None
    return loaded


def forget() -> None:
    """Tests that change the database under a running process (fixtures, rollbacks)."""
    global _current
    _current = None


def load(epoch: int) -> World:
    from apps.policies.models import CompromiseResponse, DeviceGroup, Policy

    world = World(epoch=epoch)
    world.groups = list(DeviceGroup.objects.prefetch_related("rules", "tags"))
    by_group = defaultdict(list)
    for policy in Policy.objects.select_related("group", "version"):
        by_group[policy.group_id].append(policy)
    world.policies_by_group = dict(by_group)
    for pk, key, manifest_key, name in TrustedComponent.objects.values_list(
        "pk", "component_id", "manifest_component_id", "name"
    ):
        component = decision.Component(pk, key, manifest_key, name)
        world.components[pk] = component
        world.by_key[key] = component
        world.by_manifest_key[manifest_key] = component
    released = defaultdict(list)
    for pk, component_id, label, sequence, state, digest in ComponentVersion.objects.order_by(
        "component_id", "-sequence_number", "-pk"
    ).values_list("pk", "component_id", "version_label", "sequence_number", "state", "binary_sha256"):
        version = decision.Version(pk, component_id, label, sequence, state)
        world.versions[pk] = version
        if state == ComponentVersion.State.RELEASED:
            released[component_id].append(version)
        world.digests[pk] = digest or ""
        if digest:
            world.by_digest.setdefault((component_id, digest), version)  # ordered: highest first
    world.released = {k: tuple(v) for k, v in released.items()}
    for pk, version_id, replacement_id in CompromiseResponse.objects.values_list("pk", "version_id",
                                                                                  "replacement_id"):
        world.compromises[pk] = (version_id, replacement_id)
        world.replacement_of[version_id] = replacement_id
    return world
