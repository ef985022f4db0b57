"""The roles of the portal, in one place: role name -> the permissions its group holds.

Each role is a Django group. `services.sync_roles()` makes the groups match this table; it
runs from the migration `accounts.0001_roles`, after every `migrate` (post_migrate: new
models join their roles) and as `manage.py sync_roles`. Edits made to these groups by hand
are undone by the next sync: grant anything extra through another group.

Entries are "app_label.codename"; `*` matches any characters (fnmatch), so "devices.view_*"
covers every model of the devices app, including ones added later. Entries matching nothing
(an app that is not installed) are reported by the sync, not fatal.
"""

VIEWER = "viewer"
OPERATOR = "operator"
SECURITY_OFFICER = "security officer"
ADMINISTRATOR = "administrator"

PRODUCT_APPS = (
    "audit",
    "components",
    "devices",
    "policies",
    "attestation",
    "personalization",
    "teep",
)


def _grant(app: str, models: tuple[str, ...], verbs=("add", "change", "delete")) -> list[str]:
    return [f"{app}.{verb}_{model}" for model in models for verb in verbs]


# Read everything the product shows, the audit trail included (an auditor is a viewer).
_VIEWING = [f"{app}.view_*" for app in PRODUCT_APPS]

# Day-to-day work: the catalogue (upload, release, withdraw: add/change of versions; versions
# are never deleted), agent registration, policies and queued actions.
_OPERATING = [
    *_grant("components", ("trustedcomponent", "componentversion"), verbs=("add", "change")),
    *_grant("devices", ("device",), verbs=("add", "change")),
    *_grant("devices", ("tag",)),
    *_grant(
        "policies", ("devicegroup", "attributerule", "policy", "deviceoverride", "queuedaction")
    ),
    *_grant("personalization", ("personalizationdata",), verbs=("add", "change")),
]

# Trust decisions: compromise, who may sign (TC signers and their keys), which attestation
# keys and reference values the Verifier accepts, device encryption keys.
_SECURING = [
    "components.mark_compromised",
    *_grant("components", ("tcsigner", "signerkey")),
    *_grant("policies", ("compromiseresponse",), verbs=("add", "change")),
    *_grant("attestation", ("attestationkey", "referencevalue")),
    *_grant("personalization", ("deviceencryptionkey",)),
]

# Each role holds the one before it (a security officer can also operate).
ROLES: dict[str, list[str]] = {
    VIEWER: _VIEWING,
    OPERATOR: _VIEWING + _OPERATING,
    SECURITY_OFFICER: _VIEWING + _OPERATING + _SECURING,
    # Everything, users, groups, API tokens and second-factor devices included.
    ADMINISTRATOR: ["*.*"],
}

# Never granted, whatever a pattern says: the audit trail is append-only (DESIGN.md "Audit").
NEVER_GRANTED = ("audit.add_auditevent", "audit.change_auditevent", "audit.delete_auditevent")

# Members of these groups (and superusers) must log in with a TOTP second factor.
SECOND_FACTOR_REQUIRED = (SECURITY_OFFICER, ADMINISTRATOR)
