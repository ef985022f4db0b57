"""Admin forms: read what the operator uploads or types; the services store and encrypt it."""

from django import forms

from apps.personalization.models import DeviceEncryptionKey, PersonalizationData
from apps.personalization.services import (
    PERSONALIZATION_MAX_BYTES,
    PersonalizationError,
    check_encryption_key,
)

KEY_MAX_BYTES = 16 * 1024


def _read_bounded(upload, limit: int, what: str) -> bytes:
    if upload.size is not None and upload.size > limit:
        raise forms.ValidationError(f"{what} is larger than {limit} bytes")
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise forms.ValidationError(f"{what} is larger than {limit} bytes")
    return data


class PersonalizationUploadForm(forms.ModelForm):
    """One device, one data component, the data as a file or as text (stored encrypted)."""

    data_file = forms.FileField(
        label="File",
        required=False,
        help_text=f"The personalization data, at most {PERSONALIZATION_MAX_BYTES} bytes.",
    )
    data_text = forms.CharField(
        label="Or text",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80, "autocomplete": "off"}),
        help_text="Stored as UTF-8. After saving only its SHA-256 and size are shown.",
    )

    class Meta:
        model = PersonalizationData
        fields = ["device", "component", "depends_on"]
        labels = {"component": "Data component", "depends_on": "Trusted Component it belongs to"}
        help_texts = {
            "component": "The component the data is installed as, e.g. "
            "['TEEP-Device', 'SecureFS', 'config.json'] (TEEP Appendix E Example 3).",
            "depends_on": "Optional: the delivery envelope then names this TA's manifest as a "
            "SUIT dependency.",
        }

    def clean(self):
        cleaned = super().clean()
        upload, text = cleaned.get("data_file"), cleaned.get("data_text")
        component, depends_on = cleaned.get("component"), cleaned.get("depends_on")
        if component is not None and depends_on is not None and component.pk == depends_on.pk:
            raise forms.ValidationError("Data cannot depend on its own component.")
        if upload and text:
            raise forms.ValidationError("Give the data as a file or as text, not both.")
        if upload:
            cleaned["plaintext"] = _read_bounded(upload, PERSONALIZATION_MAX_BYTES, "the file")
        elif text:
            data = text.encode("utf-8")
            if len(data) > PERSONALIZATION_MAX_BYTES:
                raise forms.ValidationError(
                    f"the text is larger than {PERSONALIZATION_MAX_BYTES} bytes"
                )
            cleaned["plaintext"] = data
        else:
            raise forms.ValidationError("Give the personalization data (a file or text).")
        return cleaned


class DeviceEncryptionKeyForm(forms.ModelForm):
    """A device's P-256 key-agreement public key: PEM or COSE_Key, as a file or pasted."""

    public_key_file = forms.FileField(label="Public key file", required=False)
    public_key_text = forms.CharField(
        label="Or paste it",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80}),
        help_text="PEM, or COSE_Key in hex. The agent writes it to keys/encryption-key.pem.",
    )

    class Meta:
        model = DeviceEncryptionKey
        fields = ["device"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["device"].disabled = True

    def clean(self):
        cleaned = super().clean()
        upload, text = (
            cleaned.get("public_key_file"),
            (cleaned.get("public_key_text") or "").strip(),
        )
        if upload and text:
            raise forms.ValidationError("Give the key as a file or as text, not both.")
        if upload:
            cleaned["public_key"] = _read_bounded(upload, KEY_MAX_BYTES, "the key file")
        elif text:
            cleaned["public_key"] = text.encode()
        else:
            raise forms.ValidationError("Give the device's public encryption key.")
        device = cleaned.get("device") or getattr(self.instance, "device", None)
        try:
            check_encryption_key(cleaned["public_key"], device)
        except PersonalizationError as exc:
            raise forms.ValidationError(str(exc)) from None
        return cleaned
