"""django-otp's TOTP devices (django_otp.plugins.otp_totp) under a name people read in the
admin's app list; its own default is the label, "Otp_Totp".

In its own module, not apps/accounts/apps.py: Django picks an app's config automatically only
when its apps.py holds exactly one AppConfig subclass.
"""

from django_otp.plugins.otp_totp.apps import DefaultConfig


class TotpDevicesConfig(DefaultConfig):
    verbose_name = "Second factor (authenticator apps)"
