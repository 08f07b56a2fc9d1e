"""Settings of a Django project that sends its email through hudhud.

hudhud's own settings come from the environment (or `HUDHUD_SETTINGS`). DEFAULT_FROM_EMAIL
is left unset on purpose: hudhud's provider default sender (TAIFA_FROM) then applies.
"""

SECRET_KEY = "django-site-for-tests-only"
DEBUG = False
ALLOWED_HOSTS: list[str] = []
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
TIME_ZONE = "Asia/Riyadh"
EMAIL_BACKEND = "hudhud.integrations.django.EmailBackend"
