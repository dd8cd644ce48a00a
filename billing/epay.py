"""The Epay (易支付) gateway protocol: a signed redirect to its `submit.php`, and its signed notification back.

Parameters are signed with MD5 over `key=value` pairs sorted by key and joined by `&` (empty values, `sign` and
`sign_type` left out), followed by the merchant key; the hex digest is sent as `sign` with `sign_type=MD5`.
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from typing import Mapping
from urllib.parse import urlencode

from django.conf import settings

PAID = "TRADE_SUCCESS"


def epay_enabled() -> bool:
    return bool(settings.EPAY_URL and settings.EPAY_PID and settings.EPAY_KEY)


def epay_sign(params: Mapping[str, str], key: str) -> str:
    signed = "&".join(f"{name}={params[name]}" for name in sorted(params)
                      if name not in ("sign", "sign_type") and params[name] != "")
    return hashlib.md5((signed + key).encode()).hexdigest()


def epay_verified(params: Mapping[str, str]) -> bool:
    """Whether a notification carries our merchant id and a signature made with our key."""
    if not epay_enabled() or params.get("pid") != settings.EPAY_PID:
        return False
    return hmac.compare_digest(str(params.get("sign", "")).lower(), epay_sign(params, settings.EPAY_KEY))


def epay_pay_url(*, trade_no: str, method: str, name: str, money: Decimal, notify_url: str, return_url: str) -> str:
    """The gateway page the user is sent to, to pay `money` for order `trade_no`."""
    params = {"pid": settings.EPAY_PID, "type": method, "out_trade_no": trade_no, "notify_url": notify_url,
              "return_url": return_url, "name": name, "money": f"{money:.2f}"}
    params["sign"] = epay_sign(params, settings.EPAY_KEY)
    params["sign_type"] = "MD5"
    return f"{settings.EPAY_URL.rstrip('/')}/submit.php?{urlencode(params)}"
