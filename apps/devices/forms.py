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

    def clean(self):
        data = super().clean()
        upload = data.get("public_key_file")
        text = (data.get("public_key_text") or "").strip()
        if not upload and not text:
            raise forms.ValidationError("Give the agent's public key as a file or as text.")
        data["public_key_bytes"] = upload.read(64 * 1024) if upload else text.encode()
        data["tag_list"] = [t.strip() for t in (data.get("tags") or "").split(",") if t.strip()]
        return data
