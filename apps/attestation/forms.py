from django import forms

from apps.attestation.models import AttestationKey, ReferenceValue


class RegisterAttestationKeyForm(forms.Form):
    name = forms.CharField(max_length=150)
    purpose = forms.ChoiceField(choices=AttestationKey.Purpose.choices)
    public_key_file = forms.FileField(required=False, help_text="PEM or COSE_Key file")
    public_key_text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 70}),
        label="or paste it",
        help_text="PEM text, or COSE_Key as hex",
    )
    ueid = forms.CharField(
        required=False,
        max_length=66,
        label="UEID (hex)",
        help_text="optional: accept this key only for Evidence naming this UEID",
    )

    def clean(self):
        data = super().clean()
        upload = data.get("public_key_file")
        text = (data.get("public_key_text") or "").strip()
        if not upload and not text:
            raise forms.ValidationError("Give the public key as a file or as text.")
        data["public_key_bytes"] = upload.read(64 * 1024) if upload else text.encode()
        return data


class ImportFileForm(forms.Form):
    file = forms.FileField()


class ReferenceValueForm(forms.ModelForm):
    class Meta:
        model = ReferenceValue
        fields = ("name", "claim", "measurement_name", "expected", "scope_hwmodel")

    def clean(self):
        from apps.attestation.services import AttestationServiceError, _normalise_reference

        data = super().clean()
        try:
            data.update(
                _normalise_reference(
                    data.get("claim") or "",
                    data.get("expected") or "",
                    data.get("measurement_name") or "",
                    data.get("scope_hwmodel") or "",
                )
            )
        except AttestationServiceError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data
