"""A Django project's settings for the email backend's tests."""
