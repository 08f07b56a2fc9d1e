"""Taqnyat (api.taqnyat.sa): SMS over REST, email (`mailSend.php`) and voice (`voiceSend.php`).

What this package knows about Taqnyat's quirks (seeds 000-002, PROVIDERS.md):
- REST failures come as `{"statusCode":400,"message":"<code or text>","reason":"..."}`;
  401 `invalid credentials information` for a bad token. The SMS error shape is not
  documented: a code may come as its number (in `message` or a code field), as the code's
  words alone (`{"statusCode":400,"message":"Your balance is 0"}`), in English or Arabic.
  Words count as much as numbers, and a balance or account fault is never an input error
  (`words`, `failures`).
- The form endpoints answer `{"ResponseStatus":"fail","Error":{"ErrorCode":N,...}}`, sometimes
  with HTTP 200/201: the body decides, not the status. Their documented replies are not
  valid JSON; `salvage` reads them.
- `accepted`/`rejected` are strings like "[966500000000,]"; `messageId` may exceed 32 bits;
  `cost` may be a string or a number (`replies`).
"""

from hudhud.worker.providers.taqnyat.client import TaqnyatClient
from hudhud.worker.providers.taqnyat.codes import PROVIDER

__all__ = ["PROVIDER", "TaqnyatClient"]
