"""Admin forms: parse and validate what operators type or upload; the services do the rest."""

import binascii

from django import forms
from django.conf import settings

from apps.components import identifiers
from apps.components.models import ComponentVersion, SignerKey, TCSigner, TrustedComponent
from apps.teep.wire.errors import CoseError
from apps.teep.wire.keys import load_public_key

KEY_MAX_BYTES = 16 * 1024
ENVELOPE_MAX_BYTES = 1 << 20

COMPONENT_ID_HELP = (
    "SUIT component identifier as the agent reports it: a list of byte strings written as "
    "'text' or h'hex', e.g. ['TEEP-Device', 'SecureFS', h'8d82573a926d4754935332dc29997f74', 'ta'] "
    "(or the hex of its CBOR array)."
)


def decode_binary_or_hex(data: bytes) -> bytes:
    """Files may hold the CBOR itself or its hex (as in the specs' vectors)."""
    stripped = data.strip()
    if stripped and all(c in b"0123456789abcdefABCDEF \t\r\n" for c in stripped):
        try:
            return binascii.unhexlify(b"".join(stripped.split()))
        except binascii.Error:
            pass
    return data


class ComponentIdField(forms.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 90}))
        super().__init__(**kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        try:
            return identifiers.parse(value)
        except identifiers.ComponentIdError as exc:
            raise forms.ValidationError(str(exc)) from None

    def prepare_value(self, value):
        if isinstance(value, list):
            return identifiers.readable(value)
        return value


class TrustedComponentAddForm(forms.ModelForm):
    component_id_text = ComponentIdField(label="Component id", help_text=COMPONENT_ID_HELP)
    manifest_component_id_text = ComponentIdField(
        label="Manifest component id",
        required=False,
        help_text="The id under which devices keep the manifest, used to unlink it. Empty: the "
        "component id with its last element replaced by 'suit' (TEEP Appendix E).",
    )

    class Meta:
        model = TrustedComponent
        fields = ["name", "vendor", "suit_vendor_id", "suit_class_id", "description", "signers"]

    def clean_component_id_text(self):
        elements = self.cleaned_data["component_id_text"]
        if (
            elements
            and TrustedComponent.objects.filter(component_id=identifiers.encode(elements)).exists()
        ):
            raise forms.ValidationError("A Trusted Component with this component id exists.")
        return elements


class TrustedComponentChangeForm(forms.ModelForm):
    class Meta:
        model = TrustedComponent
        fields = ["name", "vendor", "suit_vendor_id", "suit_class_id", "description", "signers"]


def _clean_public_key(uploaded, pasted: str):
    if uploaded is not None:
        if uploaded.size > KEY_MAX_BYTES:
            raise forms.ValidationError("The key file is too large.")
        data = uploaded.read()
    else:
        data = (pasted or "").encode()
    if not data.strip():
        return None
    try:
        key = load_public_key(data)
    except CoseError as exc:
        raise forms.ValidationError(f"Unusable public key: {exc}") from None
    existing = SignerKey.objects.filter(kid=key.kid.hex()).select_related("signer").first()
    if existing is not None:
        raise forms.ValidationError(f"This key is already registered for {existing.signer}.")
    return data


class TCSignerForm(forms.ModelForm):
    components = forms.ModelMultipleChoiceField(
        queryset=TrustedComponent.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Trusted Components whose manifests this signer may sign.",
    )
    public_key_file = forms.FileField(
        required=False,
        label="Public key file",
        help_text="PEM, COSE_Key (CBOR) or COSE_Key as hex.",
    )
    public_key_text = forms.CharField(
        required=False,
        label="or paste the key",
        widget=forms.Textarea(attrs={"rows": 5, "cols": 70}),
    )

    class Meta:
        model = TCSigner
        fields = ["name", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["components"].initial = list(
                self.instance.components.values_list("pk", flat=True)
            )
            self.fields["public_key_file"].label = "Add a public key file"

    def clean(self):
        cleaned = super().clean()
        try:
            cleaned["public_key"] = _clean_public_key(
                cleaned.get("public_key_file"), cleaned.get("public_key_text")
            )
        except forms.ValidationError as exc:
            self.add_error("public_key_file", exc)
            return cleaned
        if self.instance.pk is None and not cleaned.get("public_key"):
            self.add_error("public_key_file", "A new signer needs its public key.")
        return cleaned


class UploadForm(forms.Form):
    KIND_BINARY = "binary"
    KIND_ENVELOPE = "envelope"

    kind = forms.ChoiceField(
        label="What are you uploading?",
        choices=[
            (KIND_BINARY, "A TA binary: the TAM builds the SUIT manifest and signs it"),
            (KIND_ENVELOPE, "A SUIT envelope signed by a TC signer: the TAM verifies it"),
        ],
        widget=forms.RadioSelect,
        initial=KIND_BINARY,
    )
    component = forms.ModelChoiceField(queryset=TrustedComponent.objects.all())
    file = forms.FileField(help_text="The TA binary, or the SUIT envelope (CBOR, or its hex).")
    version_label = forms.CharField(
        max_length=100,
        required=False,
        help_text="Shown to operators; defaults to the sequence number.",
    )
    sequence_number = forms.IntegerField(
        min_value=0,
        max_value=(1 << 63) - 1,
        required=False,
        help_text="TA binary only: the manifest's sequence number. "
        "A signed envelope brings its own.",
    )
    delivery = forms.ChoiceField(
        choices=ComponentVersion.Delivery.choices,
        initial=ComponentVersion.Delivery.URI,
        widget=forms.RadioSelect,
        help_text="TA binary only.",
    )
    signer = forms.ModelChoiceField(
        queryset=TCSigner.objects.all(),
        required=False,
        help_text="Signed envelope only. Empty: any signer allowed for the component.",
    )
    release = forms.BooleanField(
        required=False, help_text="Release it now (otherwise it stays a draft)."
    )

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        upload = cleaned.get("file")
        if kind == self.KIND_BINARY:
            if cleaned.get("sequence_number") is None:
                self.add_error(
                    "sequence_number", "A TA binary needs the sequence number of its manifest."
                )
            limit = getattr(settings, "TA_UPLOAD_MAX_BYTES", 64 << 20)
            if upload is not None and upload.size > limit:
                self.add_error("file", f"The binary is larger than the limit of {limit} bytes.")
        elif kind == self.KIND_ENVELOPE and upload is not None:
            if upload.size > 2 * ENVELOPE_MAX_BYTES + 4:
                self.add_error("file", "The envelope is too large.")
            else:
                cleaned["envelope_bytes"] = decode_binary_or_hex(upload.read())
        return cleaned


class ConfirmWithReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in the audit trail.",
    )


class ReleaseForm(forms.Form):
    """The version page's Release confirmation; the reason is optional."""

    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Optional; recorded in the audit trail with your name.",
    )
