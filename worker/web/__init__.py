"""The web side: the HTTP API for producers in any language, provider webhooks in, status
callbacks out (`callbacks/`), and the operator's pages."""
