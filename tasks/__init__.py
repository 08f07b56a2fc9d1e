"""Celery tasks of hudhud. Producers enqueue them by name with `send_task`:
`hudhud.send_sms`, `hudhud.send_email`, `hudhud.send_voice`, `hudhud.retry_email`,
`hudhud.cancel`; internally `hudhud.deliver` carries only a message id."""
