from django import forms


class RegisterAgentForm(forms.Form):
    public_key_file = forms.FileField(
        required=False, help_text="PEM or COSE_Key file of the agent's signing key"
    )
    public_key_text = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 6, "cols": 70}),
        label="or paste it", help_text="PEM text, or COSE_Key as hex",
    )
    name = forms.CharField(required=False, max_length=150)
    tags = forms.CharField(required=False, help_text="comma-separated")
    accepts_kidless = forms.BooleanField(
        required=False, label="kid-less agent",
        help_text="Its agent signs without a kid (agents from older drafts): messages without one "
                  "are tried with this key.",
    )

    def clean(self):
        data = super().clean()
        upload = data.get("public_key_file")
        text = (data.get("public_key_text") or "").strip()
        if not upload and not text:
            raise forms.ValidationError("Give the agent's public key as a file or as text.")
        data["public_key_bytes"] = upload.read(64 * 1024) if upload else text.encode()
        data["tag_list"] = [t.strip() for t in (data.get("tags") or "").split(",") if t.strip()]
        return data


class LifecycleReasonForm(forms.Form):
    """Why a device is retired or brought back: recorded in the audit trail."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Recorded in the audit trail with your name.",
        error_messages={"required": "A reason is required."},
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason
