# No models: roles are auth groups (roles.py), second factors are django-otp devices. This
# module exists so that Django sends post_migrate to AccountsConfig (apps.py), which syncs
# the roles after every migrate.
