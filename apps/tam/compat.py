"""Compatibility profiles per TEEP endpoint: what an operator may set for agents in the field
(DESIGN.md decision 6, "Cipher suites and agents from older drafts"; README "Serving older
agents").

An endpoint's profile is its numbering (fixed by its URL, apps/tam/urls.py) and the suite its
first QueryRequest is signed with, chosen by TEEP_FIRST_QUERY_SUITE:

    TEEP_FIRST_QUERY_SUITE=/tam/draft-25=es256

By default the first QueryRequest is a COSE_Sign with one signature per mandatory suite,
ESP256 (-9) and Ed25519 (-19) (TEEP 8.1: the TAM does not know the agent yet). Agents built on
older drafts (libteep's teep_http_client) verify only a COSE_Sign1 signed with ES256 (-7) and
retry the default one forever; an endpoint configured with `es256` sends them a COSE_Sign1
with ES256 (the TAM's P-256 key, the one that signs ESP256) offering that suite alone. Later
messages follow the agent's own algorithm on every endpoint (TEEP 8.1).

Legacy inputs are tolerated on every endpoint alike, so they need no setting: ES256 / EdDSA
signatures, option label 5 (selected-teep-cipher-suite, ignored and recorded), an empty
tc-list, bodies sent chunked, a missing kid for devices registered as kid-less
(apps/tam/identify.py), SUIT reports signed with the agent's TEEP key.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from types import MappingProxyType

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.teep.wire import ciphersuites
from apps.teep.wire.errors import SuitError
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit import SuitReportResult, verify_report

DEFAULT_FIRST_QUERY_SUITE = "mandatory"

# Value of TEEP_FIRST_QUERY_SUITE -> the suites the first QueryRequest offers and is signed
# with (one suite: a COSE_Sign1; several: a COSE_Sign with a signature per suite, TEEP 8.1).
FIRST_QUERY_SUITES = MappingProxyType({
    DEFAULT_FIRST_QUERY_SUITE: ciphersuites.TAM_OFFERED_SUITES,
    "esp256": (ciphersuites.SUITE_SIGN1_ESP256,),
    "ed25519": (ciphersuites.SUITE_SIGN1_ED25519,),
    "es256": (ciphersuites.SUITE_SIGN1_ES256,),
    "eddsa": (ciphersuites.SUITE_SIGN1_EDDSA,),
})


def first_query_suite_name(endpoint: str | None) -> str:
    """The TEEP_FIRST_QUERY_SUITE name configured for this endpoint (its request path)."""
    return _parse(settings.TEEP_FIRST_QUERY_SUITE).get(endpoint or "", DEFAULT_FIRST_QUERY_SUITE)


def first_query_suites(endpoint: str | None) -> tuple[ciphersuites.CipherSuite, ...]:
    """The suites of the first QueryRequest (the answer to an empty POST) on this endpoint."""
    return FIRST_QUERY_SUITES[first_query_suite_name(endpoint)]


def check_settings() -> None:
    """At startup (apps.tam.apps): ImproperlyConfigured naming the bad entry, so a mistyped
    profile stops the server instead of silently serving the default."""
    from apps.tam.urls import TEEP_PATHS

    for endpoint in _parse(settings.TEEP_FIRST_QUERY_SUITE):
        if endpoint not in TEEP_PATHS:
            raise ImproperlyConfigured(
                f"TEEP_FIRST_QUERY_SUITE names {endpoint!r}, which is not a TEEP endpoint;"
                f" the endpoints are {', '.join(sorted(TEEP_PATHS))}"
            )


@lru_cache(maxsize=4)
def _parse(raw: str) -> dict[str, str]:
    """"/tam/draft-25=es256,/tam=mandatory" -> {"/tam/draft-25": "es256", "/tam": "mandatory"}."""
    profiles: dict[str, str] = {}
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        endpoint, sep, name = (text.strip() for text in entry.partition("="))
        if not sep or not endpoint or not name:
            raise ImproperlyConfigured(
                f"TEEP_FIRST_QUERY_SUITE entry {entry!r} is not ENDPOINT=SUITE (e.g. /tam/draft-25=es256)"
            )
        endpoint = "/" + endpoint.strip("/")
        if name.lower() not in FIRST_QUERY_SUITES:
            raise ImproperlyConfigured(
                f"TEEP_FIRST_QUERY_SUITE: unknown suite {name!r} for {endpoint}; one of"
                f" {', '.join(FIRST_QUERY_SUITES)}"
            )
        if endpoint in profiles:
            raise ImproperlyConfigured(f"TEEP_FIRST_QUERY_SUITE names {endpoint} twice")
        profiles[endpoint] = name.lower()
    return profiles


def report_signed_with_teep_key(raw: bytes, result: SuitReportResult, agent_key: TeepKey) -> SuitReportResult:
    """A SUIT report signed with the agent's TEEP key (libcsuit linked with libteep), where
    TEEP 4.5 / 4.6 expect a separate report key: accepted when the device's registered key
    verifies it, and then named as its signer (`verified_by`). A report whose kid claims the
    TEEP key but that the key does not verify: SuitError. Reports signed by another key, or
    not signed, are returned as they are (the TAM is given no report keys)."""
    if result.signature != "not verified" or (result.kid and result.kid != agent_key.kid):
        return result
    try:
        verify_report(raw, [agent_key])
    except SuitError:
        if result.kid:
            raise SuitError(
                "names the agent's TEEP key as its signer (kid) but does not verify with it"
            ) from None
        return result  # no kid: signed with a report key the TAM does not know
    return replace(result, signature="verified", verified_by=agent_key)
