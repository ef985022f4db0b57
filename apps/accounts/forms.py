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
