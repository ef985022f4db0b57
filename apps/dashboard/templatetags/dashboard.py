"""`{% fleet_dashboard %}`: the fleet overview on the admin index (templates/admin/index.html).

Shown to users who may view devices (every role from viewer up); each section also needs the
view permission of what it shows. The numbers come from the cached overview.
"""

from urllib.parse import urlencode

from django import template
from django.urls import reverse

from apps.dashboard import charts, rollout
from apps.dashboard.charts import Bar
from apps.dashboard.services import (
    CONTACT_BUCKETS,
    OVERVIEW_CACHE_SECONDS,
    PAGE_REFRESH_SECONDS,
    cached_fleet_overview,
)

register = template.Library()

STATE_TONES = {"registered": "muted", "active": "ok", "untrusted": "bad", "retired": "muted"}
ATTESTATION_LABELS = {
    "affirming": ("affirming (fresh)", "ok"),
    "stale": ("affirming, but stale", "warn"),
    "warning": ("warning", "warn"),
    "contraindicated": ("contraindicated", "bad"),
    "none": ("no claim", "muted"),
    "never": ("never attested", "muted"),
}
VERSION_TONES = {
    "released": "ok",
    "draft": "muted",
    "withdrawn": "warn",
    "compromised": "bad",
    "": "muted",
}
SECTION_PERMISSIONS = {
    "components": "components.view_componentversion",
    "rollouts": "policies.view_policy",
    "compromises": "policies.view_compromiseresponse",
    "deliveries": "devices.view_deliveryitem",
    "audit": "audit.view_auditevent",
}


def _devices_url(**query) -> str:
    return f"{reverse('admin:devices_device_changelist')}?{urlencode(query)}"


def _contact_query(key: str, now) -> dict:
    ages = {k: age for k, _, age in CONTACT_BUCKETS}
    keys = list(ages)
    if key == "never":
        return {"last_contact_at__isnull": "True"}
    if key == "older":
        return {"last_contact_at__lt": (now - ages[keys[-1]]).isoformat()}
    query = {"last_contact_at__gte": (now - ages[key]).isoformat()}
    if keys.index(key) > 0:
        query["last_contact_at__lt"] = (now - ages[keys[keys.index(key) - 1]]).isoformat()
    return query


def build_charts(overview: dict) -> dict:
    now = overview["generated_at"]
    devices, attestation = overview["devices"], overview["attestation"]
    result = {
        "states": charts.bar_chart(
            "Devices by state",
            [
                Bar(
                    s["label"],
                    s["count"],
                    STATE_TONES.get(s["state"], ""),
                    _devices_url(state=s["state"]),
                )
                for s in devices["by_state"]
            ],
            unit="devices",
        ),
        "attestation": charts.stacked_bar(
            "Devices in service by attestation status",
            [
                Bar(
                    ATTESTATION_LABELS[c["status"]][0],
                    c["count"],
                    ATTESTATION_LABELS[c["status"]][1],
                )
                for c in attestation["counts"]
            ],
            unit="devices",
        ),
        "last_contact": charts.histogram(
            "Devices in service by last contact with the TAM",
            [
                Bar(
                    b["label"],
                    b["count"],
                    "muted" if b["key"] in ("older", "never") else "",
                    _devices_url(**_contact_query(b["key"], now)),
                )
                for b in devices["last_contact"]
            ],
            unit="devices",
        ),
        "components": [
            (
                component,
                charts.bar_chart(
                    f"{component['name']}: devices per version",
                    [
                        Bar(
                            v["label"]
                            + (f" ({v['state']})" if v["state"] not in ("", "released") else ""),
                            v["devices"],
                            VERSION_TONES.get(v["state"], ""),
                            reverse("admin:components_componentversion_change", args=[v["id"]])
                            if v["id"]
                            else "",
                        )
                        for v in component["versions"]
                    ],
                    unit="devices",
                ),
            )
            for component in overview["components"]
        ],
    }
    return result


def build_progress(overview: dict) -> dict:
    """Progress bars (apps/dashboard/templates/console/progress.html) for the rollouts and the
    compromise responses, each segment linking to what it counts."""
    devices = reverse("admin:devices_device_changelist")
    actions = reverse("admin:policies_queuedaction_changelist")
    rollouts = [
        rollout.progress_view(
            title=item["title"], total=item["counts"]["total"], done=item["counts"]["installed"],
            done_label="installed", unit="devices",
            segments=[
                (s, rollout.ROLLOUT_LABELS[s], item["counts"][s], rollout.ROLLOUT_TONES[s],
                 f"{devices}?rollout={item['key']}-{s}")
                for s in rollout.ROLLOUT_STATES
            ],
        ) | {"policy_id": item["id"]}
        for item in overview["rollouts"]["items"]
    ]
    compromises = [
        rollout.progress_view(
            title=c["version"], total=c["total"], done=c["segments"]["removed"],
            done_label="removed", unit="devices",
            segments=[
                (b, rollout.COMPROMISE_LABELS[b], c["segments"][b], rollout.COMPROMISE_TONES[b],
                 f"{actions}?compromise__id__exact={c['id']}&progress={b}")
                for b in rollout.COMPROMISE_BUCKETS
            ],
        ) | {"response": c}
        for c in overview["compromises"]["items"]
    ]
    return {"rollouts": rollouts, "compromises": compromises}


@register.simple_tag(takes_context=True)
def dashboard_refresh_seconds(context):
    """The index reloads itself (a meta refresh) for users who see the dashboard."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.has_perm("devices.view_device"):
        return PAGE_REFRESH_SECONDS
    return 0


@register.inclusion_tag("dashboard/fleet.html", takes_context=True)
def fleet_dashboard(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm("devices.view_device"):
        return {"show": False}
    overview = cached_fleet_overview()
    return {
        "show": True,
        "overview": overview,
        "charts": build_charts(overview),
        "progress": build_progress(overview),
        "refresh_seconds": PAGE_REFRESH_SECONDS,
        "cache_seconds": OVERVIEW_CACHE_SECONDS,
        "may": {section: user.has_perm(perm) for section, perm in SECTION_PERMISSIONS.items()},
    }
