"""hudhud inside web frameworks: `hudhud.integrations.django.EmailBackend` sends Django's
email through the producer API."""
