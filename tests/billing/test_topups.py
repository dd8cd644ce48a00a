"""Online top-up through an Epay gateway: the signed redirect, the signed notification, credited exactly once."""

from __future__ import annotations

import hashlib
import threading
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.db import connection
from django.test import Client

from billing.epay import epay_sign
from billing.ledger import ledger_sum
from billing.models import LedgerEntry, LedgerReason, TopUpOrder, TopUpStatus
from billing.topups import TopUpError, topup_order_complete, topup_order_create

KEY = "merchant-secret-key"


@pytest.fixture(autouse=True)
def epay(settings):
    settings.EPAY_URL, settings.EPAY_PID, settings.EPAY_KEY = "https://pay.example.com/", "1001", KEY
    settings.TOPUP_PRICE, settings.TOPUP_MIN_USD, settings.TOPUP_METHODS = Decimal("7.3"), 2, ["alipay", "wxpay"]


@pytest.fixture
def signed_in(make_user):
    user = make_user("payer")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return user, client


def _gateway_notification(order: TopUpOrder, *, money: str | None = None, status: str = "TRADE_SUCCESS",
                          key: str = KEY) -> dict[str, str]:
    """What the gateway sends to notify_url: its own fields, signed with the merchant key."""
    params = {"pid": "1001", "trade_no": "2026120612345678", "out_trade_no": order.trade_no, "type": order.method,
              "name": "Balance top-up", "money": money or f"{order.money:.2f}", "trade_status": status}
    joined = "&".join(f"{k}={params[k]}" for k in sorted(params))
    return params | {"sign": hashlib.md5((joined + key).encode()).hexdigest(), "sign_type": "MD5"}


def test_the_signature_is_md5_over_sorted_non_empty_pairs_then_the_key():
    params = {"type": "alipay", "pid": "1001", "money": "1.00", "name": "", "sign": "x", "sign_type": "MD5"}
    assert epay_sign(params, KEY) == hashlib.md5(f"money=1.00&pid=1001&type=alipay{KEY}".encode()).hexdigest()


def test_the_console_sends_the_user_to_the_gateway_with_a_signed_order(signed_in):
    user, client = signed_in
    page = client.get("/topup/")
    assert b"Pay online" in page.content and b"7.30 CNY" in page.content
    response = client.post("/topup/pay/", {"amount": "10", "method": "wxpay"})
    assert response.status_code == 302
    url = urlsplit(response["Location"])
    assert (url.scheme, url.netloc, url.path) == ("https", "pay.example.com", "/submit.php")
    params = dict(parse_qsl(url.query))
    order = TopUpOrder.objects.get(user=user)
    assert (order.amount_usd, order.money, order.quota, order.status) == (10, Decimal("73.00"), 5_000_000, "pending")
    assert params["out_trade_no"] == order.trade_no and params["money"] == "73.00" and params["type"] == "wxpay"
    assert params["notify_url"] == "http://testserver/api/user/epay/notify"
    assert params["return_url"] == "http://testserver/topup/return/"
    assert params["sign_type"] == "MD5" and params["sign"] == epay_sign(params, KEY)
    assert user.ledger_entries.filter(reason=LedgerReason.TOPUP).count() == 0  # nothing until the gateway says so


def test_a_signed_notification_credits_once_and_the_return_page_says_so(signed_in):
    user, client = signed_in
    order = topup_order_create(user_id=user.pk, amount_usd=10, method="alipay")
    before = ledger_sum(user_id=user.pk)
    gateway = Client()
    notice = _gateway_notification(order)
    assert gateway.get("/api/user/epay/notify", notice).content == b"success"
    assert gateway.post("/api/user/epay/notify", notice).content == b"success"  # told again: still once
    order.refresh_from_db()
    assert order.status == TopUpStatus.PAID and order.gateway_trade_no == "2026120612345678" and order.paid_at
    entry = LedgerEntry.objects.get(reason=LedgerReason.TOPUP)
    assert (entry.amount, entry.ref) == (5_000_000, f"topup:{order.trade_no}")
    user.refresh_from_db()
    assert user.quota == before + 5_000_000 == ledger_sum(user_id=user.pk)
    page = client.get("/topup/return/", {"out_trade_no": order.trade_no, "trade_status": "TRADE_SUCCESS"})
    assert b"Payment received: $10.00 added" in page.content


@pytest.mark.parametrize("change", [
    {"key": "wrong-key"},
    {"money": "0.01"},  # signed properly, but not what the order costs
    {"status": "WAIT_BUYER_PAY"},
])
def test_notifications_that_do_not_prove_payment_credit_nothing(signed_in, change):
    user, client = signed_in
    order = topup_order_create(user_id=user.pk, amount_usd=3, method="alipay")
    assert Client().get("/api/user/epay/notify", _gateway_notification(order, **change)).content == b"fail"
    order.refresh_from_db()
    assert order.status == TopUpStatus.PENDING and not LedgerEntry.objects.filter(reason=LedgerReason.TOPUP).exists()
    page = client.get("/topup/return/", {"out_trade_no": order.trade_no})
    assert b"waiting for the payment gateway" in page.content


def test_unknown_orders_and_other_users_orders(signed_in, make_user):
    _user, client = signed_in
    stranger = topup_order_create(user_id=make_user("other").pk, amount_usd=5, method="alipay")
    fake = TopUpOrder(trade_no="MGNOPE", method="alipay", money=Decimal("36.50"))
    assert Client().get("/api/user/epay/notify", _gateway_notification(fake)).content == b"fail"
    assert b"This order was not found" in client.get("/topup/return/", {"out_trade_no": stranger.trade_no}).content


def test_the_api_starts_a_payment_and_refuses_what_it_cannot_sell(signed_in, settings):
    _user, client = signed_in
    r = client.post("/api/user/pay", {"amount": 4, "payment_method": "alipay"}, content_type="application/json")
    assert r.status_code == 200 and r.json()["data"]["money"] == "29.20" and r.json()["data"]["quota"] == 2_000_000
    assert r.json()["data"]["url"].startswith("https://pay.example.com/submit.php?")
    r = client.post("/api/user/pay", {"amount": 1, "payment_method": "alipay"}, content_type="application/json")
    assert r.status_code == 400 and r.json()["message"] == "The amount must be between 2 and 10000 US dollars."
    r = client.post("/api/user/pay", {"amount": 4, "payment_method": "paypal"}, content_type="application/json")
    assert r.status_code == 400 and r.json()["message"] == "Unknown payment method: paypal"
    settings.EPAY_KEY = ""
    r = client.post("/api/user/pay", {"amount": 4, "payment_method": "alipay"}, content_type="application/json")
    assert r.status_code == 404 and r.json()["success"] is False
    assert b"Pay online" not in client.get("/topup/").content
    assert client.post("/topup/pay/", {"amount": "10", "method": "alipay"}).status_code == 404
    with pytest.raises(TopUpError):
        topup_order_create(user_id=_user.pk, amount_usd=4, method="alipay")


def test_a_bad_amount_comes_back_on_the_form(signed_in):
    _user, client = signed_in
    response = client.post("/topup/pay/", {"amount": "1", "method": "alipay"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"greater than or equal to 2" in response.content
    assert not TopUpOrder.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_confirmations_credit_once(make_user):
    user = make_user("racer")
    order = topup_order_create(user_id=user.pk, amount_usd=2, method="alipay")
    outcomes: list[bool] = []
    barrier = threading.Barrier(20)

    def confirm() -> None:
        try:
            barrier.wait()
            outcomes.append(topup_order_complete(trade_no=order.trade_no, money=Decimal("14.60")))
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(True) == 1 and outcomes.count(False) == 19
    assert LedgerEntry.objects.filter(reason=LedgerReason.TOPUP).count() == 1
    user.refresh_from_db()
    assert user.quota == ledger_sum(user_id=user.pk)


def test_operators_can_credit_an_order_the_gateway_never_confirmed(signed_in, admin_client):
    user, _client = signed_in
    order = topup_order_create(user_id=user.pk, amount_usd=2, method="alipay")
    response = admin_client.post("/admin/billing/topuporder/", {
        "action": "complete_orders", "_selected_action": [order.pk], "index": "0"}, follow=True)
    assert b"1 order credited." in response.content
    order.refresh_from_db()
    assert order.status == TopUpStatus.PAID and order.gateway_trade_no == "manual"
    assert LedgerEntry.objects.filter(reason=LedgerReason.TOPUP, amount=1_000_000).count() == 1
