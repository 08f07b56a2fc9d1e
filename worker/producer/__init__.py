"""The producer side: the Python API, message building and validation, campaigns, the public record."""
