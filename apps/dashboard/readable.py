"""Names where the console would otherwise show numbers or hex: COSE algorithms and TEEP
error codes by the names the wire package defines, components and versions by their
catalogue names, devices by a short readable label.

Look-ups of the catalogue are done in bulk (`CatalogueNames`), a fixed number of queries for
a page or a chunk of an export, never one per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from apps.teep.wire.algorithms import ALGORITHM_NAMES
from apps.teep.wire.component_ids import component_id_from_key, component_id_text
from apps.teep.wire.errors import WireError
from apps.teep.wire.numbering import CURRENT, NUMBERINGS

# COSE structure tags used as the first element of a TEEP cipher-suite operation (TEEP 8.1).
COSE_TYPE_NAMES = {
    18: "COSE_Sign1",
    98: "COSE_Sign",
    16: "COSE_Encrypt0",
    96: "COSE_Encrypt",
    17: "COSE_Mac0",
    97: "COSE_Mac",
}


def algorithm_label(alg) -> str:
    """-9 -> "ESP256 (-9)"; an id the registry does not name stays a number."""
    if alg is None or alg == "":
        return "—"
    return f"{ALGORITHM_NAMES[alg]} ({alg})" if alg in ALGORITHM_NAMES else f"COSE algorithm {alg}"


def error_label(code, name: str = "", numbering: str = "") -> str:
    """11, "ERR_MANIFEST_PROCESSING_FAILED" -> "ERR_MANIFEST_PROCESSING_FAILED (11)"; the name
    from the device's numbering table (DESIGN.md "Wire numbering") when it was not recorded."""
    if code is None or code == "":
        return "—"
    table = NUMBERINGS.get(numbering, CURRENT).err_code_names
    name = name or table.get(code, "")
    return f"{name} ({code})" if name else f"unknown error ({code})"


def cipher_suites_label(suites) -> str:
    """[[[18, -9]], [[18, -19]]] -> "COSE_Sign1 ESP256 (-9); COSE_Sign1 Ed25519 (-19)"."""
    shown = []
    for suite in suites or []:
        try:
            shown.append(
                " + ".join(
                    f"{COSE_TYPE_NAMES.get(op[0], op[0])} {algorithm_label(op[1])}" for op in suite
                )
            )
        except (TypeError, IndexError, KeyError):
            shown.append(str(suite))
    return "; ".join(shown) or "—"


def component_key_text(key: str) -> str:
    """A component id key (hex of its CBOR) as TEEP-Device/SecureFS/h'…'/ta."""
    try:
        return component_id_text(component_id_from_key(key))
    except (WireError, ValueError):
        return key


class CatalogueNames:
    """Component keys and version ids -> catalogue names, loaded in two queries per batch."""

    def __init__(self):
        self.components: dict[str, str] = {}
        self.versions: dict[int, tuple[str, str]] = {}

    def load(self, *, keys: Iterable[str] = (), version_ids: Iterable[int] = ()) -> CatalogueNames:
        from apps.components.models import ComponentVersion, TrustedComponent

        keys = {k for k in keys if k and k not in self.components}
        ids = {v for v in version_ids if isinstance(v, int) and v not in self.versions}
        if keys:
            self.components.update(
                TrustedComponent.objects.filter(component_id__in=keys).values_list(
                    "component_id", "name"
                )
            )
        if ids:
            for pk, name, label, state in ComponentVersion.objects.filter(pk__in=ids).values_list(
                "pk", "component__name", "version_label", "state"
            ):
                self.versions[pk] = (f"{name} {label}", state)
        return self

    def component(self, key: str) -> str:
        return self.components.get(key) or component_key_text(key)

    def version(self, version_id) -> str:
        return self.versions.get(version_id, ("", ""))[0]

    def item(self, entry: dict[str, Any]) -> str:
        """One {"kind", "component", "version"} entry of an exchange's detail, for people."""
        what = self.version(entry.get("version")) or self.component(entry.get("component", ""))
        return f"{entry.get('kind', '')} {what}".strip()


# Where exchanges keep component keys (apps/teep/tam.py): detail["deliveries"], ["settled"].
COMPONENT_LISTS = ("deliveries", "settled")


def keys_in_detail(detail: dict) -> tuple[set[str], set[int]]:
    keys, ids = set(), set()
    for name in COMPONENT_LISTS:
        for entry in detail.get(name) or []:
            if isinstance(entry, dict):
                if isinstance(entry.get("component"), str):
                    keys.add(entry["component"])
                if isinstance(entry.get("version"), int):
                    ids.add(entry["version"])
    return keys, ids


def readable_detail(detail: dict, names: CatalogueNames) -> dict:
    """The detail with component keys replaced by catalogue names (and version labels);
    everything else as recorded. The stored row is never changed: this is a view of it."""
    shown = dict(detail)
    for name in COMPONENT_LISTS:
        entries = detail.get(name)
        if isinstance(entries, list):
            shown[name] = [
                {
                    **{k: v for k, v in e.items() if k not in ("component", "version")},
                    "component": names.component(e.get("component", "")),
                    **(
                        {"version": names.version(e["version"]) or e["version"]}
                        if e.get("version") is not None
                        else {}
                    ),
                }
                if isinstance(e, dict)
                else e
                for e in entries
            ]
    if "err_code" in detail and isinstance(detail.get("err_code"), int):
        shown["err_code"] = error_label(
            detail["err_code"], detail.get("err_name", ""), detail.get("numbering", "")
        )
    return shown


def device_label(name: str, kid: str, registered_at=None) -> str:
    """What Device.__str__ shows, from plain values (lists built from values())."""
    from apps.devices.models import Device

    return str(Device(name=name or "", kid=kid or "", registered_at=registered_at))
