from django import forms

from apps.components.models import ComponentVersion, TrustedComponent
from apps.devices.models import Device
from apps.policies.models import DeviceGroup, QueuedAction


class MarkCompromisedForm(forms.Form):
    version = forms.ModelChoiceField(
        queryset=ComponentVersion.objects.exclude(state=ComponentVersion.State.COMPROMISED)
        .select_related("component"),
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 70}),
                             help_text="recorded in the audit trail (e.g. the advisory)",
                             error_messages={"required": "A reason is required."})
    # Chosen on the confirmation page (radio buttons next to what each choice means): empty =
    # remove only.
    replacement = forms.ModelChoiceField(
        queryset=ComponentVersion.objects.filter(state=ComponentVersion.State.RELEASED).select_related("component"),
        required=False, widget=forms.HiddenInput,
    )
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


class QueueActionForm(forms.Form):
    kind = forms.ChoiceField(choices=QueuedAction.Kind.choices)
    component = forms.ModelChoiceField(queryset=TrustedComponent.objects.all())
    version = forms.ModelChoiceField(
        queryset=ComponentVersion.objects.select_related("component"), required=False,
        help_text="install/update: empty = latest released; remove: empty = whatever it holds",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"] = VersionChoiceField(
            required=False, help_text=self.fields["version"].help_text
        )
    device = forms.ModelChoiceField(queryset=Device.objects.all(), required=False,
                                    widget=forms.TextInput, help_text="device id")
    group = forms.ModelChoiceField(queryset=DeviceGroup.objects.all(), required=False)
    reason = forms.CharField(required=False, max_length=300)

    def clean(self):
        data = super().clean()
        if bool(data.get("device")) == bool(data.get("group")):
            raise forms.ValidationError("Choose one device or one group.")
        return data


class VersionChoiceField(forms.ModelChoiceField):
    """A component version chosen by name: "SecureFS TA 1.2.0 (released)", never by id."""

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "queryset",
            ComponentVersion.objects.select_related("component").defer("envelope")
            .order_by("component__name", "-sequence_number"),
        )
        super().__init__(**kwargs)

    def label_from_instance(self, version):
        return f"{version.component.name} {version.version_label} ({version.get_state_display().lower()})"
