"""What a simulated TEEP Agent keeps between runs, in one folder (no Django).

    <state>/keys/agent.pem            TEEP message signing key (mode 600)
    <state>/keys/agent.pub.pem        its public key, to register with the TAM
    <state>/keys/report.pem           SUIT report signing key (mode 600); TEEP 4.5 / 4.6: a
                                      SUIT report's COSE key MUST differ from the TEEP key
    <state>/keys/encryption.pem       P-256 key-agreement key (mode 600): the TAM encrypts
                                      personalization data to it (SUIT firmware encryption
                                      5.2, ES-DH); never used to sign
    <state>/keys/encryption-key.pem   its public key, to register with the TAM
    <state>/trust/tam/*.pem           TAM public keys (trust anchors for TEEP messages)
    <state>/trust/signers/*.pem       Trusted Component signer keys (for SUIT envelopes)
    <state>/tee/<h>/meta.json         one installed component (the simulated TEE); meta.json
                                      names its payload and envelope files and is replaced
                                      last, so a component is either the old one or the new one
    <state>/pending.json              RequestTA / UnrequestTA calls not yet acted on by a TAM
    <state>/identity.json             optional: the SUIT vendor / class ids this device matches,
                                      {"vendor-ids": [UUID, ...], "class-ids": [UUID, ...]}
                                      (an empty or absent list matches any; SUIT manifest
                                      8.4.8.3: a device MAY match several)
    <state>/downloads/*.part          partial payload downloads (resumed with Range)

An agent folder is used by one agent at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from apps.teep.wire.component_ids import component_id_from_key, component_id_key, component_id_text
from apps.teep.wire.keys import KeyKind, TeepKey
from apps.teep.wire.suit import SuitDigest

ComponentId = tuple[bytes, ...]


@dataclass(frozen=True)
class InstalledComponent:
    """A Trusted Component in the simulated TEE."""

    component_id: ComponentId
    manifest_component_id: ComponentId | None
    sequence_number: int
    image_sha256: bytes
    image_size: int
    manifest_digest: SuitDigest  # of the envelope that installed it (SUIT reports refer to it)
    reference_uri: str
    payload_path: Path
    envelope_path: Path
    installed_at: float

    @property
    def key(self) -> str:
        return component_id_key(self.component_id)

    @property
    def text(self) -> str:
        return component_id_text(self.component_id)

    @property
    def manifest_key(self) -> str:
        """The id the TAM names in unneeded-manifest-list: the manifest component id (TD 5.2.1),
        or the component id for envelopes that carry none."""
        return component_id_key(self.manifest_component_id or self.component_id)

    def read_payload(self) -> bytes:
        return self.payload_path.read_bytes()


@dataclass(frozen=True)
class PendingRequest:
    """RequestTA (TEEP 4.3 requested-tc-info)."""

    component_id: ComponentId
    tc_manifest_sequence_number: int | None = None


@dataclass(frozen=True)
class DeviceIdentity:
    """What condition-vendor-identifier / -class-identifier compare with (SUIT manifest
    8.4.10.1): the UUIDs (16 bytes each) this device matches; an empty tuple matches any."""

    vendor_ids: tuple[bytes, ...] = ()
    class_ids: tuple[bytes, ...] = ()

    def __post_init__(self):
        for name in ("vendor_ids", "class_ids"):
            ids = tuple(bytes(value) for value in getattr(self, name))
            if any(len(value) != 16 for value in ids):
                raise ValueError(f"{name}: a SUIT vendor / class id is a 16-byte UUID")
            object.__setattr__(self, name, ids)

    def to_json(self) -> dict:
        return {
            "vendor-ids": [str(uuid.UUID(bytes=value)) for value in self.vendor_ids],
            "class-ids": [str(uuid.UUID(bytes=value)) for value in self.class_ids],
        }

    @classmethod
    def from_json(cls, document: dict) -> DeviceIdentity:
        def ids(name: str) -> tuple[bytes, ...]:
            return tuple(uuid.UUID(str(value)).bytes for value in document.get(name) or ())

        return cls(ids("vendor-ids"), ids("class-ids"))


@dataclass(frozen=True)
class StagedComponent:
    """A component ready to be committed: everything checked, nothing written yet."""

    component_id: ComponentId
    image: bytes


class AgentState:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    # --- keys ---------------------------------------------------------------------------------

    @property
    def agent_key_path(self) -> Path:
        return self.root / "keys" / "agent.pem"

    @property
    def agent_public_key_path(self) -> Path:
        return self.root / "keys" / "agent.pub.pem"

    @property
    def report_key_path(self) -> Path:
        return self.root / "keys" / "report.pem"

    def load_or_create_keys(self, kind: KeyKind) -> tuple[TeepKey, TeepKey]:
        """(TEEP key, SUIT report key); generated on first use. An existing key keeps its kind."""
        agent_key = self._load_or_create(self.agent_key_path, kind)
        if not self.agent_public_key_path.exists():
            _write_atomic(self.agent_public_key_path, agent_key.public_pem(), mode=0o644)
        report_key = self._load_or_create(self.report_key_path, agent_key.kind)
        return agent_key, report_key

    @property
    def encryption_key_path(self) -> Path:
        return self.root / "keys" / "encryption.pem"

    @property
    def encryption_public_key_path(self) -> Path:
        return self.root / "keys" / "encryption-key.pem"

    def load_or_create_encryption_key(self) -> TeepKey:
        """The device's key-agreement key (always P-256: ECDH-ES + A128KW, SUIT MTI 3)."""
        key = self._load_or_create(self.encryption_key_path, "p256")
        if key.kind != "p256":
            raise ValueError(f"{self.encryption_key_path} is not a P-256 key")
        if not self.encryption_public_key_path.exists():
            _write_atomic(self.encryption_public_key_path, key.public_pem(), mode=0o644)
        return key

    def _load_or_create(self, path: Path, kind: KeyKind) -> TeepKey:
        if path.exists():
            return TeepKey.from_pem(path.read_bytes())
        key = TeepKey.generate(kind)
        _write_atomic(path, key.private_pem(), mode=0o600)
        return key

    # --- trust anchors ------------------------------------------------------------------------

    def add_trust_anchor(self, role: str, key: TeepKey) -> Path:
        """role: "tam" or "signers"; stored as <kid>.pem, so adding twice changes nothing."""
        path = self.root / "trust" / role / f"{key.kid.hex()}.pem"
        if not path.exists():
            _write_atomic(path, key.public().public_pem(), mode=0o644)
        return path

    def trust_anchors(self, role: str) -> list[TeepKey]:
        folder = self.root / "trust" / role
        if not folder.is_dir():
            return []
        return [
            TeepKey.from_pem(path.read_bytes()).public() for path in sorted(folder.glob("*.pem"))
        ]

    # --- the simulated TEE --------------------------------------------------------------------

    @property
    def tee_dir(self) -> Path:
        return self.root / "tee"

    def _component_dir(self, component_id: Sequence[bytes]) -> Path:
        # Component ids can be long; the folder name is a hash, meta.json holds the id.
        key = component_id_key(component_id)
        return self.tee_dir / hashlib.sha256(key.encode()).hexdigest()[:32]

    def installed(self) -> list[InstalledComponent]:
        if not self.tee_dir.is_dir():
            return []
        found = []
        for meta_path in sorted(self.tee_dir.glob("*/meta.json")):
            found.append(_component_from_meta(meta_path))
        return sorted(found, key=lambda component: component.key)

    def installed_component(self, component_id: Sequence[bytes]) -> InstalledComponent | None:
        meta_path = self._component_dir(component_id) / "meta.json"
        return _component_from_meta(meta_path) if meta_path.exists() else None

    def install(
        self,
        staged: Sequence[StagedComponent],
        *,
        envelope_bytes: bytes,
        sequence_number: int,
        manifest_component_id: ComponentId | None,
        manifest_digest: SuitDigest,
        reference_uri: str,
    ) -> list[InstalledComponent]:
        """Commit the components of one manifest: write new files, then swap each meta.json.

        Everything that can fail (fetch, digest, signature) happened before; here each
        component switches from old to new with one rename (write temp + os.replace).
        """
        suffix = f"{sequence_number}-{secrets.token_hex(4)}"
        written = []
        for item in staged:
            folder = self._component_dir(item.component_id)
            folder.mkdir(parents=True, exist_ok=True)
            payload_name, envelope_name = f"payload-{suffix}.bin", f"envelope-{suffix}.cbor"
            _write_atomic(folder / payload_name, item.image)
            _write_atomic(folder / envelope_name, envelope_bytes)
            meta = {
                "component_id": component_id_key(item.component_id),
                "manifest_component_id": (
                    component_id_key(manifest_component_id) if manifest_component_id else None
                ),
                "sequence_number": sequence_number,
                "image_sha256": hashlib.sha256(item.image).hexdigest(),
                "image_size": len(item.image),
                "manifest_digest": [manifest_digest.algorithm, manifest_digest.value.hex()],
                "reference_uri": reference_uri,
                "payload": payload_name,
                "envelope": envelope_name,
                "installed_at": time.time(),
            }
            written.append((folder, meta))
        installed = []
        for folder, meta in written:
            _write_atomic(folder / "meta.json", json.dumps(meta, indent=1).encode())
            _remove_unreferenced(folder, {meta["payload"], meta["envelope"], "meta.json"})
            installed.append(_component_from_meta(folder / "meta.json"))
        return installed

    def remove(self, component: InstalledComponent) -> None:
        """Unlink: meta.json goes first, so a crash leaves no half-present component."""
        folder = self._component_dir(component.component_id)
        (folder / "meta.json").unlink(missing_ok=True)
        _remove_unreferenced(folder, set())
        try:
            folder.rmdir()
        except OSError:
            pass

    # --- pending RequestTA / UnrequestTA ------------------------------------------------------

    @property
    def pending_path(self) -> Path:
        return self.root / "pending.json"

    def _pending(self) -> dict:
        if not self.pending_path.exists():
            return {"requested": [], "unrequested": []}
        return json.loads(self.pending_path.read_text())

    def _save_pending(self, pending: dict) -> None:
        _write_atomic(self.pending_path, json.dumps(pending, indent=1).encode())

    def requested(self) -> list[PendingRequest]:
        return [
            PendingRequest(
                tuple(component_id_from_key(entry["component_id"])), entry.get("min_sequence")
            )
            for entry in self._pending()["requested"]
        ]

    def unrequested(self) -> list[ComponentId]:
        return [tuple(component_id_from_key(key)) for key in self._pending()["unrequested"]]

    def add_request(self, request: PendingRequest) -> None:
        pending = self._pending()
        key = component_id_key(request.component_id)
        pending["requested"] = [e for e in pending["requested"] if e["component_id"] != key]
        pending["requested"].append(
            {"component_id": key, "min_sequence": request.tc_manifest_sequence_number}
        )
        self._save_pending(pending)

    def add_unrequest(self, manifest_component_id: Sequence[bytes]) -> None:
        pending = self._pending()
        key = component_id_key(manifest_component_id)
        if key not in pending["unrequested"]:
            pending["unrequested"].append(key)
        self._save_pending(pending)

    def clear_request(self, component_id: Sequence[bytes]) -> None:
        key = component_id_key(component_id)
        pending = self._pending()
        kept = [e for e in pending["requested"] if e["component_id"] != key]
        if kept != pending["requested"]:
            pending["requested"] = kept
            self._save_pending(pending)

    def clear_unrequest(self, manifest_component_id: Sequence[bytes]) -> None:
        key = component_id_key(manifest_component_id)
        pending = self._pending()
        if key in pending["unrequested"]:
            pending["unrequested"].remove(key)
            self._save_pending(pending)

    # --- SUIT identity -------------------------------------------------------------------------

    @property
    def identity_path(self) -> Path:
        return self.root / "identity.json"

    def identity(self) -> DeviceIdentity:
        """The configured vendor / class ids; without identity.json, a device that matches any."""
        if not self.identity_path.exists():
            return DeviceIdentity()
        try:
            return DeviceIdentity.from_json(json.loads(self.identity_path.read_text()))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"{self.identity_path}: not a device identity ({exc})") from None

    def save_identity(self, identity: DeviceIdentity) -> None:
        _write_atomic(self.identity_path, json.dumps(identity.to_json(), indent=1).encode())

    # --- partial downloads --------------------------------------------------------------------

    def download_path(self, uri: str) -> Path:
        return self.root / "downloads" / f"{hashlib.sha256(uri.encode()).hexdigest()[:32]}.part"


def _component_from_meta(meta_path: Path) -> InstalledComponent:
    meta = json.loads(meta_path.read_text())
    folder = meta_path.parent
    manifest_id = meta.get("manifest_component_id")
    algorithm, digest_hex = meta["manifest_digest"]
    return InstalledComponent(
        component_id=tuple(component_id_from_key(meta["component_id"])),
        manifest_component_id=tuple(component_id_from_key(manifest_id)) if manifest_id else None,
        sequence_number=meta["sequence_number"],
        image_sha256=bytes.fromhex(meta["image_sha256"]),
        image_size=meta["image_size"],
        manifest_digest=SuitDigest(algorithm, bytes.fromhex(digest_hex)),
        reference_uri=meta.get("reference_uri") or "",
        payload_path=folder / meta["payload"],
        envelope_path=folder / meta["envelope"],
        installed_at=meta["installed_at"],
    )


def _remove_unreferenced(folder: Path, keep: set[str]) -> None:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.name not in keep and path.is_file():
            path.unlink(missing_ok=True)


def _write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write a temp file beside `path` (created with `mode`, never wider) and rename it over.

    Atomic against a crash of the agent process (no fsync: a simulated TEE, not a device)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, mode)  # the umask may have narrowed it; never widen a private key
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
