"""Devices in the admin: read-only state, the exchange timeline, and agent registration."""

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.attestation.admin import attestation_history_html
from apps.audit.models import AuditEvent
from apps.dashboard import rollout
from apps.dashboard.badges import state_badge
from apps.dashboard.readable import (
    algorithm_label,
    cipher_suites_label,
    component_key_text,
    error_label,
)
from apps.devices import services
from apps.devices.forms import LifecycleReasonForm, RegisterAgentForm
from apps.devices.models import DeliveryItem, Device, InstalledComponent, SuitReport, Tag
from apps.policies.models import QueuedAction
from apps.policies.resolution import explain_due, groups_of

TIMELINE_LENGTH = 50


def readable_component(key: str) -> str:
    return component_key_text(key)


def exchange_history_url(kid: str) -> str:
    """The audit trail filtered to one device: every exchange and operator action about it."""
    return f"{reverse('admin:audit_auditevent_changelist')}?{urlencode({'device': kid})}"


def error_status(device):
    """The agent's last error (label, when) and, once a later Update to the device succeeded,
    when that was (the devices service sets error_resolved_at); the error itself stays as
    the agent sent it."""
    if device.last_error_code is None:
        return None
    label = error_label(device.last_error_code, device.last_error_name, device.numbering)
    return label, device.last_error_at, device.error_resolved_at


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class InstalledComponentInline(ReadOnlyInline):
    model = InstalledComponent
    fields = ("component_readable", "version", "sequence_number", "digest", "updated_at")
    readonly_fields = fields
    verbose_name_plural = "Installed components"

    @admin.display(description="component id")
    def component_readable(self, row):
        return readable_component(row.component_key)

    @admin.display(description="image digest (SHA-256)")
    def digest(self, row):
        if not row.image_digest:
            return "—"
        return format_html('<code title="{}">{}…</code>', row.image_digest, row.image_digest[:16])


class DeliveryInline(ReadOnlyInline):
    model = DeliveryItem
    fields = ("created_at", "kind", "component_readable", "version", "state_badge", "reason", "settled_at")
    readonly_fields = fields
    verbose_name_plural = "Deliveries (what Updates asked)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("version__component")

    @admin.display(description="component id")
    def component_readable(self, row):
        return readable_component(row.component_key)

    @admin.display(description="state")
    def state_badge(self, row):
        return state_badge("delivery", row.state, row.get_state_display())


class QueuedActionInline(ReadOnlyInline):
    model = QueuedAction
    fk_name = "device"
    fields = ("created_at", "kind", "component", "version", "state_badge", "attempts", "reason", "settled_at")
    readonly_fields = fields
    verbose_name_plural = "Queued actions"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("component", "version__component")

    @admin.display(description="state")
    def state_badge(self, row):
        return state_badge("action", row.state, row.get_state_display())


class SuitReportInline(ReadOnlyInline):
    model = SuitReport
    fields = ("received_at", "message_type", "outcome", "summary")
    readonly_fields = fields
    verbose_name_plural = "SUIT reports"

    @admin.display(description="result")
    def outcome(self, row):
        if row.success is None:
            return "—"
        return state_badge("delivery", "succeeded" if row.success else "failed",
                           "success" if row.success else "failure")


class RolloutFilter(admin.SimpleListFilter):
    """?rollout=policy-12-failed: the devices of one rollout in one state (the rollout pages'
    and the dashboard's links); shown in the sidebar only while it is applied."""

    title = "rollout"
    parameter_name = "rollout"

    def _parsed(self):
        key, _, state = (self.value() or "").rpartition("-")  # states have "_", never "-"
        return key, state

    def lookups(self, request, model_admin):
        if not self.value():
            return []
        key, state = self._parsed()
        found = rollout.rollout_from_key(key)
        label = rollout.ROLLOUT_LABELS.get(state, "unknown state")
        return [(self.value(), f"{found.title}: {label}" if found else "unknown rollout")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        key, state = self._parsed()
        found = rollout.rollout_from_key(key)
        if found is None or state not in rollout.ROLLOUT_STATES:
            return queryset.none()
        return queryset.filter(pk__in=rollout.rollout_devices(found, state))


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ("__str__", "short_kid", "state_badge", "numbering", "installed_count", "last_contact_at",
                    "last_error")
    list_filter = ("state", "numbering", "registration", "tags", RolloutFilter)
    search_fields = ("kid", "name", "ueid")
    show_full_result_count = False
    actions = ("retire_selected", "unretire_selected")
    readonly_fields = (
        "kid", "ueid", "state_badge", "registration", "numbering", "signing_alg_label", "selected_version",
        "first_contact_at", "last_contact_at", "backoff_until", "last_error", "last_error_msg",
        "agent_cipher_suites_label", "agent_versions", "requested_readable",
        "unneeded_readable", "ext_list", "registered_at", "registered_by", "exchange_timeline",
        "attributes", "due_explanation", "attestation_history", "outstanding_tokens", "public_key_pem",
    )
    fieldsets = (
        ("Identity and keys", {"fields": ("name", "tags", "kid", "public_key_pem", "ueid", "registration",
                                          "registered_at", "registered_by")}),
        ("Protocol", {"fields": ("state_badge", "numbering", "accepts_kidless", "signing_alg_label", "selected_version",
                                 "first_contact_at", "last_contact_at", "backoff_until", "outstanding_tokens")}),
        ("Attestation history", {"fields": ("attestation_history",)}),
        ("Last reported", {"fields": ("requested_readable", "unneeded_readable", "ext_list", "attributes")}),
        ("Policy: what is due at the next contact, and why", {"fields": ("due_explanation",)}),
        ("Last error from the agent", {"fields": ("last_error", "last_error_msg",
                                                  "agent_cipher_suites_label", "agent_versions")}),
        ("Exchange timeline", {"fields": ("exchange_timeline",)}),
    )
    inlines = (InstalledComponentInline, QueuedActionInline, DeliveryInline, SuitReportInline)

    def get_queryset(self, request):
        # A correlated count is computed for the page's rows only, not by grouping the whole
        # fleet (100,000 devices: see bench/dashboard.py and bench/fanout.py).
        installed = (
            InstalledComponent.objects.filter(device=OuterRef("pk"))
            .order_by()
            .values("device")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_queryset(request).annotate(
            _installed=Coalesce(Subquery(installed, output_field=IntegerField()), 0),
        )

    def has_add_permission(self, request):
        return False  # agents are registered through the register view (a service call)

    def has_delete_permission(self, request, obj=None):
        return False  # devices are retired, never deleted (their history stays)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            actions.pop("retire_selected", None)
            actions.pop("unretire_selected", None)
        return actions

    @admin.display(description="kid")
    def short_kid(self, device):
        return f"{device.kid[:16]}…"

    @admin.display(description="state", ordering="state")
    def state_badge(self, device):
        return state_badge("device", device.state, device.get_state_display())

    @admin.display(description="installed", ordering="_installed")
    def installed_count(self, device):
        return device._installed

    @admin.display(description="signing algorithm")
    def signing_alg_label(self, device):
        return algorithm_label(device.signing_alg)

    @admin.display(description="cipher suites the agent supports")
    def agent_cipher_suites_label(self, device):
        return cipher_suites_label(device.agent_cipher_suites)

    @admin.display(description="last error")
    def last_error(self, device):
        status = error_status(device)
        if status is None:
            return "—"
        label, error_at, resolved_at = status
        when = f" at {error_at:%Y-%m-%d %H:%M} UTC" if error_at else ""
        if resolved_at:
            return format_html(
                '{} <span class="resolved-note">{}</span>',
                state_badge("delivery", "succeeded", "resolved"),
                f"{label}{when}; a later Update succeeded at {resolved_at:%Y-%m-%d %H:%M} UTC",
            )
        return format_html("{} {}{}", state_badge("delivery", "failed", "error"), label, when)

    @admin.display(description="requested components")
    def requested_readable(self, device):
        return ", ".join(readable_component(r["component_key"]) for r in device.requested_components) or "—"

    @admin.display(description="unneeded manifests")
    def unneeded_readable(self, device):
        return ", ".join(readable_component(k) for k in device.unneeded_manifests) or "—"

    @admin.display(description="agent signing key")
    def public_key_pem(self, device):
        key = services.device_public_key(device)
        algorithms = ", ".join(algorithm_label(a) for a in key.algorithms)
        return format_html("<pre>{}</pre>COSE algorithms {}", key.public_pem().decode(), algorithms)

    @admin.display(description="appraisals (newest first)")
    def attestation_history(self, device):
        return attestation_history_html(device)

    @admin.display(description="outstanding requests")
    def outstanding_tokens(self, device):
        from django.utils import timezone

        from apps.devices.models import DeliveryItem

        # Update tokens are minted (nothing stored until used): what is outstanding is the
        # Updates whose deliveries are unanswered and whose token has not expired.
        rows = DeliveryItem.objects.filter(device=device, state=DeliveryItem.State.SENT,
                                           expires_at__gt=timezone.now())
        count = rows.values("update_token").distinct().count()
        oldest = rows.order_by("created_at").first()
        return f"{count} unanswered" + (f", oldest issued {oldest.created_at:%Y-%m-%d %H:%M} UTC" if oldest else "")

    @admin.display(description="due")
    def due_explanation(self, device):
        decisions = explain_due(device)
        groups = ", ".join(g.name for g in groups_of(device)) or "none"
        if not decisions:
            return format_html("Groups: {}. Nothing: no policy, request or queued action concerns it.", groups)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    d.name,
                    d.held_version.version_label if d.held_version else ("unrecognised" if d.held else "—"),
                    ("waiting: " if d.waiting else "") + (d.action if d.action != "none" else "nothing"),
                    d.version.version_label if d.version else "",
                    d.reason,
                )
                for d in decisions
            ),
        )
        return format_html(
            "Groups: {}.<table class='due-explanation'><thead><tr><th>component</th><th>holds</th><th>due</th>"
            "<th>version</th><th>because</th></tr></thead><tbody>{}</tbody></table>",
            groups, rows,
        )

    @admin.display(description="latest exchanges")
    def exchange_timeline(self, device):
        events = AuditEvent.objects.filter(device_kid=device.kid).order_by("-created_at", "-id")[:TIMELINE_LENGTH]
        link = format_html(
            '<p class="exchange-history-link"><a href="{}">Full exchange history of this device '
            "in the audit trail</a> (every exchange and operator action, with CSV export)</p>",
            exchange_history_url(device.kid),
        )
        if not events:
            return format_html("{}no exchange yet", link)
        rows = format_html_join(
            "",
            "<tr class='outcome-{}'><td><a href='{}'>{}</a></td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    e.outcome,
                    reverse("admin:audit_auditevent_change", args=[e.pk]),
                    e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.action,
                    e.detail.get("in", ""),
                    e.detail.get("out") or "nothing",
                    state_badge("outcome", e.outcome),
                    e.reason,
                )
                for e in events
            ),
        )
        return format_html(
            "{}<table class='exchange-timeline'><thead><tr><th>time (UTC)</th><th>action</th>"
            "<th>in → out</th><th>outcome</th><th>reason</th></tr></thead><tbody>{}</tbody></table>",
            link, rows,
        )

    def save_model(self, request, obj, form, change):
        """Only name, tags and the kid-less flag are editable; the service writes and audits them."""
        services.update_device_labels(
            obj, name=form.cleaned_data.get("name", obj.name), tags=form.cleaned_data.get("tags", []),
            accepts_kidless=form.cleaned_data.get("accepts_kidless"), actor=request.user, request=request,
        )

    def save_related(self, request, form, formsets, change):
        """Tags are set by the service; the inlines are read-only."""
        for formset in formsets:  # saves nothing, but the admin's change message reads them
            self.save_formset(request, form, formset, change=change)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        device = Device.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        extra = {}
        if device is not None:
            extra["exchange_history_url"] = exchange_history_url(device.kid)
            if self.has_change_permission(request, device):
                retired = device.state == Device.State.RETIRED
                extra.update(
                    lifecycle_url=reverse(
                        "admin:devices_device_unretire" if retired else "admin:devices_device_retire",
                        args=[device.pk],
                    ),
                    lifecycle_label="Bring back into service…" if retired else "Retire this device…",
                    lifecycle_retire=not retired,
                )
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def get_urls(self):
        return [
            path("register/", self.admin_site.admin_view(self.register_view), name="devices_device_register"),
            path("tam-keys/", self.admin_site.admin_view(self.tam_keys_view), name="devices_device_tam_keys"),
            path("<int:pk>/retire/", self.admin_site.admin_view(self.retire_view), name="devices_device_retire"),
            path("<int:pk>/unretire/", self.admin_site.admin_view(self.unretire_view),
                 name="devices_device_unretire"),
        ] + super().get_urls()

    # --- retiring (one device from its page, several from the list) ---------------------------

    def retire_view(self, request, pk):
        return self._lifecycle_view(request, pk, retiring=True)

    def unretire_view(self, request, pk):
        return self._lifecycle_view(request, pk, retiring=False)

    def _lifecycle_view(self, request, pk, *, retiring: bool):
        if not self.has_change_permission(request):
            raise PermissionDenied
        device = Device.objects.filter(pk=pk).first()
        if device is None:
            raise Http404
        form = LifecycleReasonForm(request.POST or None)
        change_url = reverse("admin:devices_device_change", args=[device.pk])
        if request.method == "POST" and form.is_valid():
            try:
                self._apply_lifecycle(request, [device], form.cleaned_data["reason"], retiring=retiring)
            except services.DeviceError as exc:
                form.add_error(None, str(exc))
            else:
                return HttpResponseRedirect(change_url)
        return self._lifecycle_page(request, [device], form, retiring=retiring, back_url=change_url)

    def _lifecycle_page(self, request, devices, form, *, retiring, back_url, action=""):
        verb = "retire" if retiring else "bring back"
        what = str(devices[0]) if len(devices) == 1 else f"{len(devices)} devices"
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Retire devices" if retiring else "Bring devices back into service",
            "question": f"Retire {what}?" if retiring else f"Bring {what} back into service?",
            "verb": verb,
            "retiring": retiring,
            "devices": devices,
            "form": form,
            "back_url": back_url,
            "action": action,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/devices/device/confirm_lifecycle.html", context)

    def _apply_lifecycle(self, request, devices, reason, *, retiring: bool) -> None:
        service = services.retire_device if retiring else services.unretire_device
        for device in devices:
            service(device, actor=request.user, reason=reason, request=request)
            self.message_user(
                request,
                f"{device} is retired: its messages are dropped from now on." if retiring
                else f"{device} is back in service.",
                messages.SUCCESS,
            )

    def _lifecycle_action(self, request, queryset, *, retiring: bool):
        if not self.has_change_permission(request):
            raise PermissionDenied
        devices = [d for d in queryset.order_by("pk") if (d.state == Device.State.RETIRED) == (not retiring)]
        skipped = queryset.count() - len(devices)
        if not devices:
            self.message_user(request, "None of the selected devices is " + (
                "in service." if retiring else "retired."), messages.WARNING)
            return None
        form = LifecycleReasonForm(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            for device in devices:
                try:
                    self._apply_lifecycle(request, [device], form.cleaned_data["reason"], retiring=retiring)
                except services.DeviceError as exc:
                    self.message_user(request, str(exc), messages.ERROR)
            if skipped:
                self.message_user(request, f"{skipped} selected device(s) skipped: already "
                                  + ("retired." if retiring else "in service."), messages.WARNING)
            return None
        return self._lifecycle_page(
            request, devices, form, retiring=retiring,
            back_url=reverse("admin:devices_device_changelist"),
            action="retire_selected" if retiring else "unretire_selected",
        )

    @admin.action(description="Retire selected devices (asks for a reason)")
    def retire_selected(self, request, queryset):
        return self._lifecycle_action(request, queryset, retiring=True)

    @admin.action(description="Bring selected retired devices back into service")
    def unretire_selected(self, request, queryset):
        return self._lifecycle_action(request, queryset, retiring=False)

    def tam_keys_view(self, request):
        """The TAM public keys agents must be provisioned with (as `manage.py tam_keys export`)."""
        from apps.teep.tam_keys import exported_public_keys

        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "keys": exported_public_keys(),
                   "title": "TAM public keys", "opts": self.model._meta}
        return TemplateResponse(request, "admin/devices/device/tam_keys.html", context)

    def register_view(self, request):
        if not self.has_view_permission(request) or not request.user.has_perm("devices.change_device"):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        form = RegisterAgentForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                device = services.register_agent(
                    public_key_bytes=form.cleaned_data["public_key_bytes"],
                    name=form.cleaned_data["name"],
                    tags=form.cleaned_data["tag_list"],
                    accepts_kidless=form.cleaned_data["accepts_kidless"],
                    actor=request.user,
                    request=request,
                )
            except services.DeviceError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Registered agent {device.kid}", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:devices_device_change", args=[device.pk]))
        context = {**self.admin_site.each_context(request), "form": form, "title": "Register a TEEP Agent key",
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/devices/device/register.html", context)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ("name",)
