"""Broker plumbing: the Celery app, the Redis transport, task messages and the one way to enqueue."""
