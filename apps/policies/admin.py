"""Groups, policies, overrides, queued actions and compromise responses in the admin.

Policy objects are edited with Django's forms (each save, inline rows included, writes an
audit row with the acting user); queuing, cancelling and marking a version compromised call
services, behind a confirmation page for the compromise. Rollouts and compromise responses
show their progress (apps/dashboard/rollout.py) with links to the devices in each state.
"""

import csv

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Case, CharField, Count, Q, Value, When
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.audit.services import record_operator_action
from apps.dashboard import rollout
from apps.dashboard.badges import state_badge
from apps.policies import services
from apps.policies.forms import MarkCompromisedForm, QueueActionForm, VersionChoiceField
from apps.policies.models import (
    AttributeRule,
    CompromiseResponse,
    DeviceGroup,
    DeviceOverride,
    Policy,
    QueuedAction,
)


def _version_field(db_field, kwargs):
    """Pinned versions are chosen by name and state, never typed as a numeric id."""
    return VersionChoiceField(
        required=not db_field.blank, label=db_field.verbose_name, help_text=db_field.help_text,
        **{k: v for k, v in kwargs.items() if k in ("initial",)},
    )


def _current_repr(obj) -> dict | None:
    """The stored object as it is before a save (for the audit row's "before")."""
    if obj.pk is None:
        return None
    stored = type(obj)._default_manager.filter(pk=obj.pk).first()
    return {"repr": str(stored)} if stored is not None else None


# Pages that say they refresh do (a meta refresh: no script, works without JavaScript).
CONSOLE_REFRESH_SECONDS = 30


class AuditedAdmin(admin.ModelAdmin):
    """Every change is audited, inline rows included; `created_by` is the user who added the
    object, set by the product and never a choice."""

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        has_creator = any(f.name == "created_by" for f in self.model._meta.get_fields())
        return fields + ("created_by",) if has_creator and "created_by" not in fields else fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "version":
            return _version_field(db_field, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        before = _current_repr(obj) if change else None
        if not change and hasattr(obj, "created_by_id") and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        services.record_policy_change(obj, actor=request.user, change="change" if change else "add",
                                      request=request, before=before)

    def save_formset(self, request, form, formset, change):
        """Inline rows (a group's policies and rules) are audited like the object itself, in
        the same transaction (the admin's changeform_view is atomic)."""
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            services.record_policy_change(obj, actor=request.user, change="delete", request=request,
                                          before={"repr": str(obj)})
            obj.delete()
        for obj in instances:
            adding = obj.pk is None
            before = None if adding else _current_repr(obj)
            if adding and hasattr(obj, "created_by_id") and obj.created_by_id is None:
                obj.created_by = request.user
            obj.save()
            services.record_policy_change(obj, actor=request.user, change="add" if adding else "change",
                                          request=request, before=before)
        formset.save_m2m()

    def delete_model(self, request, obj):
        services.record_policy_change(obj, actor=request.user, change="delete", request=request,
                                      before={"repr": str(obj)})
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


class AttributeRuleInline(admin.TabularInline):
    model = AttributeRule
    extra = 1


class PolicyInline(admin.TabularInline):
    model = Policy
    extra = 0
    fields = ("component", "effect", "version", "note", "created_by")
    readonly_fields = ("created_by",)
    autocomplete_fields = ("component",)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "version":
            return _version_field(db_field, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(DeviceGroup)
class DeviceGroupAdmin(AuditedAdmin):
    list_display = ("name", "all_devices", "tag_list", "rule_count", "policy_count")
    search_fields = ("name",)
    filter_horizontal = ("tags",)
    inlines = (AttributeRuleInline, PolicyInline)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            _rules=Count("rules", distinct=True), _policies=Count("policies", distinct=True)
        ).prefetch_related("tags")

    @admin.display(description="tags")
    def tag_list(self, group):
        return ", ".join(t.name for t in group.tags.all()) or "—"

    @admin.display(description="rules", ordering="_rules")
    def rule_count(self, group):
        return group._rules

    @admin.display(description="policies", ordering="_policies")
    def policy_count(self, group):
        return group._policies


def _progress_html(progress) -> str:
    return render_to_string("console/progress.html", {"p": progress})


def device_list_url() -> str:
    return reverse("admin:devices_device_changelist")


@admin.register(Policy)
class PolicyAdmin(AuditedAdmin):
    list_display = ("group", "component", "effect", "version", "note")
    list_filter = ("effect", "group")
    list_select_related = ("group", "component", "version")
    search_fields = ("group__name", "component__name")
    autocomplete_fields = ("component",)
    readonly_fields = ("rollout",)
    change_list_template = "admin/policies/policy/change_list.html"
    ROLLOUTS_PER_PAGE = 20

    def get_fields(self, request, obj=None):
        fields = [f for f in super().get_fields(request, obj) if f != "rollout"]
        return fields + ["rollout"] if obj is not None else fields

    @admin.display(description="rollout")
    def rollout(self, policy):
        if policy.effect != "required":
            return "A forbidding policy has no rollout: devices remove what it forbids at their next contact."
        found = rollout.policy_rollout(policy)
        if found.target is None:
            return "Nothing released yet: no version to roll out."
        return _progress_html(rollout.rollout_progress(found, device_list_url()))

    def get_urls(self):
        return [
            path("rollouts/", self.admin_site.admin_view(self.rollouts_view), name="policies_policy_rollouts"),
            *super().get_urls(),
        ]

    def rollouts_view(self, request):
        """Every required policy's rollout, most recently changed first; one page at a time
        (one aggregate query per policy shown)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        from apps.policies.models import Effect

        policies = (
            Policy.objects.filter(effect=Effect.REQUIRED)
            .select_related("group", "component", "version")
            .order_by("-updated_at", "-id")
        )
        page = Paginator(policies, self.ROLLOUTS_PER_PAGE).get_page(request.GET.get("p"))
        rows = []
        for policy in page.object_list:
            found = rollout.policy_rollout(policy)
            rows.append({
                "policy": policy,
                "progress": rollout.rollout_progress(found, device_list_url()) if found.target else None,
                "title": found.title,
            })
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Rollouts",
            "rows": rows,
            "page": page,
            "refresh_seconds": CONSOLE_REFRESH_SECONDS,
        }
        return TemplateResponse(request, "admin/policies/policy/rollouts.html", context)


@admin.register(DeviceOverride)
class DeviceOverrideAdmin(AuditedAdmin):
    list_display = ("device", "component", "effect", "version", "note")
    list_filter = ("effect",)
    list_select_related = ("device", "component", "version")
    raw_id_fields = ("device",)
    autocomplete_fields = ("component",)


class CompromiseProgressFilter(admin.SimpleListFilter):
    """The buckets of a compromise response's progress bar (apps/dashboard/rollout.py)."""

    title = "progress"
    parameter_name = "progress"

    def lookups(self, request, model_admin):
        return [(b, rollout.COMPROMISE_LABELS[b]) for b in rollout.COMPROMISE_BUCKETS]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        condition = rollout.compromise_bucket_condition(self.value())
        return queryset.filter(condition) if condition is not None else queryset.none()


@admin.register(QueuedAction)
class QueuedActionAdmin(admin.ModelAdmin):
    list_display = ("device_link", "kind", "component", "version", "state_badge", "attempts", "reason",
                    "created_at", "delivered_at", "settled_at", "compromise")
    list_display_links = ("kind",)
    list_filter = ("state", "kind", "compromise", CompromiseProgressFilter)
    list_select_related = ("device", "component", "version", "compromise__version__component")
    search_fields = ("device__kid", "device__name", "component__name")
    show_full_result_count = False
    raw_id_fields = ("device", "delivery")
    readonly_fields = [f.name for f in QueuedAction._meta.fields]
    actions = ("cancel_selected",)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="state", ordering="state")
    def state_badge(self, action):
        return state_badge("action", action.state, action.get_state_display())

    @admin.display(description="device", ordering="device__name")
    def device_link(self, action):
        return format_html('<a href="{}">{}</a>', reverse("admin:devices_device_change", args=[action.device_id]),
                           action.device)

    def has_add_permission(self, request):
        return request.user.has_perm("policies.add_queuedaction")

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm("policies.change_queuedaction"):
            actions.pop("cancel_selected", None)
        return actions

    @admin.action(description="Cancel selected actions (not yet delivered)")
    def cancel_selected(self, request, queryset):
        cancelled = services.cancel_actions(queryset.values_list("pk", flat=True), actor=request.user,
                                            request=request)
        skipped = queryset.count() - cancelled
        self.message_user(request, f"Cancelled {cancelled} action(s)"
                          + (f"; {skipped} already delivered or settled" if skipped else ""), messages.SUCCESS)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = QueueActionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                queued = services.queue_action(
                    actor=request.user, component=data["component"], kind=data["kind"],
                    version=data["version"], device=data["device"], group=data["group"],
                    reason=data["reason"], request=request,
                )
            except services.PolicyError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Queued {queued} action(s)", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:policies_queuedaction_changelist"))
        context = {**self.admin_site.each_context(request), "form": form, "opts": self.model._meta,
                   "title": "Queue an install, update or removal"}
        return TemplateResponse(request, "admin/policies/queuedaction/queue.html", context)


COMPROMISE_EXPORT_COLUMNS = (
    "device", "device_kid", "device_state", "action", "version", "progress", "action_state", "attempts",
    "queued_at", "delivered_at", "settled_at", "last_contact_at", "reason",
)


@admin.register(CompromiseResponse)
class CompromiseResponseAdmin(admin.ModelAdmin):
    list_display = ("version", "marked_by_name", "marked_at", "holders_at_mark", "progress_column", "removed",
                    "pending", "failed", "fanout_done")
    list_select_related = ("version__component",)
    readonly_fields = ("version", "reason", "replacement_choice", "marked_at", "marked_by_name", "holders_at_mark",
                       "fanout_finished_at", "progress", "drill_down", "audit_trail")
    fields = readonly_fields

    def get_queryset(self, request):
        state = "actions__state"
        removal = Q(actions__kind=QueuedAction.Kind.REMOVE)
        return super().get_queryset(request).annotate(
            _total=Count("actions", filter=removal),
            _removed=Count("actions", filter=removal & Q(**{state: QueuedAction.State.SUCCEEDED})),
            _pending=Count("actions", filter=removal & Q(**{f"{state}__in": QueuedAction.OPEN_STATES})),
            _failed=Count("actions", filter=removal & Q(**{state: QueuedAction.State.FAILED})),
            _cancelled=Count("actions", filter=removal & Q(**{state: QueuedAction.State.CANCELLED})),
        )

    @admin.display(description="removed", ordering="_removed")
    def removed(self, response):
        return response._removed

    @admin.display(description="pending", ordering="_pending")
    def pending(self, response):
        return response._pending

    @admin.display(description="failed", ordering="_failed")
    def failed(self, response):
        return response._failed

    @admin.display(description="fan-out done", boolean=True)
    def fanout_done(self, response):
        return response.fanout_finished_at is not None

    @admin.display(description="holders get instead")
    def replacement_choice(self, response):
        if response.replacement_id is None:
            return "nothing (remove only)"
        return f"version {response.replacement.version_label}, in the same Update as the removal"

    @admin.display(description="progress")
    def progress_column(self, response):
        """A small bar of the removals from the list's own annotations (no query per row)."""
        removals = f"{_actions_url(response)}&kind__exact=remove"
        progress = rollout.progress_view(
            title=str(response.version), total=response._total, done=response._removed,
            done_label="removed", unit="devices",
            segments=[
                ("removed", "removed", response._removed, "ok", f"{removals}&state__exact=succeeded"),
                ("pending", "open", response._pending, "info", f"{removals}&state__in=queued,delivered"),
                ("failed", "failed", response._failed, "bad", f"{removals}&state__exact=failed"),
                ("cancelled", "cancelled", response._cancelled, "muted", f"{removals}&state__exact=cancelled"),
            ],
        )
        return render_to_string("console/progress.html", {"p": progress, "compact": True})

    @admin.display(description="progress")
    def progress(self, response):
        p = services.compromise_progress(response)
        bar = _progress_html(rollout.compromise_progress_view(
            response, p, reverse("admin:policies_queuedaction_changelist")
        ))
        replacement = p["replacement"]
        return format_html(
            "{}<table class='compromise-progress'><tr><th>devices with a removal queued</th><td>{}</td></tr>"
            "<tr><th>not yet contacted</th><td>{}</td></tr><tr><th>pending (contacted, removal due or "
            "awaiting the answer)</th><td>{}</td></tr><tr><th>delivered, not confirmed</th><td>{}</td></tr>"
            "<tr><th>removed</th><td>{}</td></tr>"
            "<tr><th>failed</th><td>{}</td></tr><tr><th>cancelled</th><td>{}</td></tr>"
            "<tr><th>still held (per the devices' last reports)</th><td>{}</td></tr>"
            "<tr><th>replacement installed</th><td>{}</td></tr>"
            "<tr><th>fan-out</th><td>{}</td></tr></table>",
            bar, p["total"], p["not_contacted"], p["pending"], p["delivered_not_confirmed"], p["removed"],
            p["failed"], p["cancelled"], p["still_held"],
            f"{replacement['installed']} of {replacement['total']} ({replacement['version']})"
            if replacement["version"] else "— (remove only)",
            "finished" if p["fanout_finished"] else "in progress",
        )

    @admin.display(description="devices")
    def drill_down(self, response):
        return format_html(
            '<a href="{}">Every device and the state of its removal</a> (reason, attempts, times) · '
            '<a href="{}">Export them as CSV</a>',
            _actions_url(response),
            reverse("admin:policies_compromiseresponse_export", args=[response.pk]),
        )

    @admin.display(description="audit")
    def audit_trail(self, response):
        url = reverse("admin:audit_auditevent_changelist")
        return format_html(
            '<a href="{}?action=component_version.compromise&object_id={}">who marked it, when and why</a>',
            url, response.version_id,
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"refresh_seconds": CONSOLE_REFRESH_SECONDS, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self):
        return [
            path("<int:pk>/export.csv", self.admin_site.admin_view(self.export_view),
                 name="policies_compromiseresponse_export"),
            *super().get_urls(),
        ]

    def export_view(self, request, pk):
        """One row per device the response concerns: the state of its removal, as CSV."""
        if not (self.has_view_permission(request) and request.user.has_perm("policies.view_queuedaction")):
            raise PermissionDenied
        response = CompromiseResponse.objects.select_related("version__component").filter(pk=pk).first()
        if response is None:
            raise Http404
        record_operator_action(actor=request.user, action="compromise.export", obj=response, request=request)
        bucket = Case(
            *[When(rollout.compromise_bucket_condition(b), then=Value(rollout.COMPROMISE_LABELS[b]))
              for b in rollout.COMPROMISE_BUCKETS],
            default=Value(""), output_field=CharField(),
        )
        # Each device's removal, and the replacement install when the response chose one.
        actions = (
            QueuedAction.objects.filter(compromise=response).select_related("device", "version")
            .annotate(_bucket=bucket).order_by("device_id", "-kind", "id")
        )
        writer = csv.writer(_Echo())

        def rows():
            yield writer.writerow(COMPROMISE_EXPORT_COLUMNS)
            for action in actions.iterator(chunk_size=2000):
                device = action.device
                yield writer.writerow([
                    _cell(str(device)), device.kid, device.state, action.kind,
                    _cell(action.version.version_label if action.version_id else ""),
                    action._bucket or f"replacement {action.get_state_display().lower()}",
                    action.state, action.attempts, _time(action.created_at), _time(action.delivered_at),
                    _time(action.settled_at), _time(device.last_contact_at), _cell(action.reason),
                ])

        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        answer = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        answer["Content-Disposition"] = f'attachment; filename="compromise-{response.pk}-{stamp}.csv"'
        return answer

    def has_add_permission(self, request):
        return request.user.has_perm("components.mark_compromised")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def add_view(self, request, form_url="", extra_context=None):
        """Choose a version and give a reason, see what will happen, confirm."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = MarkCompromisedForm(request.POST or None, initial={"version": request.GET.get("version")})
        preview = None
        if request.method == "POST" and form.is_valid():
            version = form.cleaned_data["version"]
            if form.cleaned_data["confirm"]:
                try:
                    replacement = form.cleaned_data["replacement"]
                    response = services.mark_compromised(
                        version, actor=request.user, reason=form.cleaned_data["reason"],
                        replacement=replacement, request=request,
                    )
                except services.PolicyError as exc:
                    form.add_error(None, str(exc))
                    preview = services.compromise_preview(version)
                else:
                    instead = f"replaced by {replacement.version_label}" if replacement else "remove only"
                    self.message_user(
                        request, f"{version} is marked compromised; removal queued for "
                        f"{response.holders_at_mark} device(s) at their next contact ({instead})", messages.WARNING,
                    )
                    return HttpResponseRedirect(
                        reverse("admin:policies_compromiseresponse_change", args=[response.pk])
                    )
            else:
                preview = services.compromise_preview(version)
        context = {**self.admin_site.each_context(request), "form": form, "preview": preview,
                   "opts": self.model._meta, "title": "Mark a component version compromised"}
        return TemplateResponse(request, "admin/policies/compromiseresponse/mark.html", context)


def _actions_url(response) -> str:
    return f"{reverse('admin:policies_queuedaction_changelist')}?compromise__id__exact={response.pk}"


class _Echo:
    def write(self, value):
        return value


def _cell(value) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _time(value) -> str:
    return value.isoformat() if value else ""
