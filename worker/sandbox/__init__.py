"""A stand-in for the Taqnyat and Taifa Mail HTTP APIs, for tests, demos and load runs.

`python -m hudhud.worker.sandbox --port N` serves both providers on one port; see docs/sandbox.md.
"""
