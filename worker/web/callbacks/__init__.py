"""Status callbacks: every change of a message POSTed, signed (Standard Webhooks), to the
producer's endpoint (`HUDHUD_CALLBACK_URL`, or the message's own `callback_url`).

- `body`: the callback's body, built from the change (nothing personal);
- `signing`: the `webhook-*` headers;
- `schedule`: when a failed callback is tried again;
- `sending`: one try over HTTP and what it got;
- `dispatcher`: `hudhud callbacks run`, from the change stream to the endpoints;
- `replay`: `hudhud callbacks replay`, the callbacks of past changes queued again.
Their state lives in `hudhud.worker.ledger.callbacks`.
"""
