import re

from django import forms


class TotpCodeForm(forms.Form):
    token = forms.RegexField(
        label="code",
        regex=r"^\d{6,8}$",
        max_length=8,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
        error_messages={"invalid": "Enter the 6-digit code your authenticator app shows."},
    )


class SecondFactorCodeForm(forms.Form):
    """The authenticator app's code, or a backup code (8 letters and digits, as shown)."""

    token = forms.CharField(
        label="code",
        max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
    )

    def clean_token(self):
        token = re.sub(r"[\s-]", "", self.cleaned_data["token"]).lower()
        if not re.fullmatch(r"\d{6,8}|[a-z2-7]{8}", token):
            raise forms.ValidationError(
                "Enter the 6-digit code your authenticator app shows, or a backup code."
            )
        return token

