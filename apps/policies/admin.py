"""Groups, policies, overrides, queued actions and compromise responses in the admin.

Policy objects are edited with Django's forms (each save writes an audit row); queuing,
cancelling and marking a version compromised call services, behind a confirmation page
for the compromise.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from apps.policies import services
from apps.policies.forms import MarkCompromisedForm, QueueActionForm
from apps.policies.models import (
    AttributeRule,
    CompromiseResponse,
    DeviceGroup,
    DeviceOverride,
    Policy,
    QueuedAction,
)


class AuditedAdmin(admin.ModelAdmin):
    """Every change is audited; `created_by` is the user who added the object, never a choice."""

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        has_creator = any(f.name == "created_by" for f in self.model._meta.get_fields())
        return fields + ("created_by",) if has_creator and "created_by" not in fields else fields

    def save_model(self, request, obj, form, change):
        if not change and hasattr(obj, "created_by_id") and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        services.record_policy_change(obj, actor=request.user, change="change" if change else "add",
                                      request=request)

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
    autocomplete_fields = ("component",)
    raw_id_fields = ("version",)


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


@admin.register(Policy)
class PolicyAdmin(AuditedAdmin):
    list_display = ("group", "component", "effect", "version", "note")
    list_filter = ("effect", "group")
    list_select_related = ("group", "component", "version")
    search_fields = ("group__name", "component__name")
    autocomplete_fields = ("component",)
    raw_id_fields = ("version",)


@admin.register(DeviceOverride)
class DeviceOverrideAdmin(AuditedAdmin):
    list_display = ("device", "component", "effect", "version", "note")
    list_filter = ("effect",)
    list_select_related = ("device", "component", "version")
    raw_id_fields = ("device", "version")
    autocomplete_fields = ("component",)


@admin.register(QueuedAction)
class QueuedActionAdmin(admin.ModelAdmin):
    list_display = ("device", "kind", "component", "version", "state", "attempts", "reason",
                    "created_at", "delivered_at", "settled_at", "compromise")
    list_filter = ("state", "kind", "compromise")
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


@admin.register(CompromiseResponse)
class CompromiseResponseAdmin(admin.ModelAdmin):
    list_display = ("version", "marked_by_name", "marked_at", "holders_at_mark", "removed", "pending",
                    "failed", "fanout_done")
    list_select_related = ("version__component",)
    readonly_fields = ("version", "reason", "replacement_choice", "marked_at", "marked_by_name", "holders_at_mark",
                       "fanout_finished_at", "progress", "audit_trail")
    fields = readonly_fields

    def get_queryset(self, request):
        state = "actions__state"
        removal = Q(actions__kind=QueuedAction.Kind.REMOVE)
        return super().get_queryset(request).annotate(
            _removed=Count("actions", filter=removal & Q(**{state: QueuedAction.State.SUCCEEDED})),
            _pending=Count("actions", filter=removal & Q(**{f"{state}__in": QueuedAction.OPEN_STATES})),
            _failed=Count("actions", filter=removal & Q(**{state: QueuedAction.State.FAILED})),
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
    def progress(self, response):
        p = services.compromise_progress(response)
        replacement = p["replacement"]
        return format_html(
            "<table class='compromise-progress'><tr><th>devices with a removal queued</th><td>{}</td></tr>"
            "<tr><th>not yet contacted</th><td>{}</td></tr><tr><th>pending (contacted, removal due or "
            "awaiting the answer)</th><td>{}</td></tr><tr><th>delivered, not confirmed</th><td>{}</td></tr>"
            "<tr><th>removed</th><td>{}</td></tr>"
            "<tr><th>failed</th><td>{}</td></tr><tr><th>cancelled</th><td>{}</td></tr>"
            "<tr><th>still held (per the devices' last reports)</th><td>{}</td></tr>"
            "<tr><th>replacement installed</th><td>{}</td></tr>"
            "<tr><th>fan-out</th><td>{}</td></tr></table>",
            p["total"], p["not_contacted"], p["pending"], p["delivered_not_confirmed"], p["removed"], p["failed"],
            p["cancelled"], p["still_held"],
            f"{replacement['installed']} of {replacement['total']} ({replacement['version']})"
            if replacement["version"] else "— (remove only)",
            "finished" if p["fanout_finished"] else "in progress",
        )

    @admin.display(description="audit")
    def audit_trail(self, response):
        url = reverse("admin:audit_auditevent_changelist")
        return format_html(
            '<a href="{}?action=component_version.compromise&object_id={}">who marked it, when and why</a>',
            url, response.version_id,
        )

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
