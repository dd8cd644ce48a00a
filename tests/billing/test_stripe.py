"""Online top-up by card through Stripe Checkout: the session, and the signed webhook credited exactly once."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from django.test import Client

from billing.models import LedgerEntry, LedgerReason, TopUpOrder, TopUpStatus
from billing.topups import topup_order_create

WEBHOOK_SECRET = "whsec_test_secret"


@pytest.fixture(autouse=True)
def stripe(settings, monkeypatch):
    settings.STRIPE_SECRET_KEY, settings.STRIPE_WEBHOOK_SECRET = "sk_test_key", WEBHOOK_SECRET
    settings.STRIPE_PRICE, settings.STRIPE_CURRENCY = Decimal("1.05"), "usd"
    settings.EPAY_URL = settings.EPAY_PID = settings.EPAY_KEY = ""
    sent: list[dict] = []

    def post(url, *, data, headers, **kwargs):
        sent.append({"url": url, "form": data, "headers": headers})
        return httpx.Response(200, json={"id": "cs_test_1", "object": "checkout.session",
                                          "url": "https://checkout.stripe.com/c/pay/cs_test_1"})

    monkeypatch.setattr("billing.stripe.httpx.post", post)
    return sent


@pytest.fixture
def signed_in(make_user):
    user = make_user("payer")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return user, client


def _event(order: TopUpOrder, *, kind: str = "checkout.session.completed", amount: int | None = None,
           currency: str = "usd", status: str = "paid") -> bytes:
    session = {"id": "cs_test_1", "object": "checkout.session", "client_reference_id": order.trade_no,
               "amount_total": int(order.money * 100) if amount is None else amount, "currency": currency,
               "payment_status": status, "metadata": {"trade_no": order.trade_no}}
    return json.dumps({"id": "evt_1", "type": kind, "data": {"object": session}}).encode()


def _signature(payload: bytes, *, at: int | None = None, secret: str = WEBHOOK_SECRET) -> str:
    stamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def _deliver(payload: bytes, signature: str) -> httpx.Response:
    return Client().post("/api/stripe/webhook", payload, content_type="application/json",
                         HTTP_STRIPE_SIGNATURE=signature)


def test_the_console_sends_the_user_to_a_checkout_session_for_the_order(signed_in, stripe):
    user, client = signed_in
    assert b"Card (Stripe)" in client.get("/topup/").content and b"1.05 USD" in client.get("/topup/").content
    response = client.post("/topup/pay/", {"amount": "10", "method": "stripe"})
    assert response.status_code == 302 and response["Location"] == "https://checkout.stripe.com/c/pay/cs_test_1"
    order = TopUpOrder.objects.get(user=user)
    assert (order.method, order.money, order.quota) == ("stripe", Decimal("10.50"), 5_000_000)
    (call,) = stripe
    assert call["url"] == "https://api.stripe.com/v1/checkout/sessions"
    assert call["headers"]["authorization"] == "Bearer sk_test_key"
    form = call["form"]
    assert form["line_items[0][price_data][unit_amount]"] == "1050" and form["client_reference_id"] == order.trade_no
    assert form["line_items[0][price_data][currency]"] == "usd" and form["mode"] == "payment"
    back = urlsplit(form["success_url"])
    assert back.path == "/topup/return/" and dict(parse_qsl(back.query)) == {"out_trade_no": order.trade_no}


def test_a_signed_webhook_credits_the_order_once(signed_in):
    user, _client = signed_in
    order = topup_order_create(user_id=user.pk, amount_usd=10, method="stripe")
    payload = _event(order)
    first = _deliver(payload, _signature(payload))
    assert first.status_code == 200 and first.json() == {"received": True}
    assert _deliver(payload, _signature(payload)).status_code == 200  # Stripe retries: still once
    order.refresh_from_db()
    assert order.status == TopUpStatus.PAID and order.gateway_trade_no == "cs_test_1"
    assert LedgerEntry.objects.filter(reason=LedgerReason.TOPUP, amount=5_000_000).count() == 1


@pytest.mark.parametrize("make, signed", [
    (lambda order: _event(order), lambda p: _signature(p, secret="whsec_forged")),
    (lambda order: _event(order), lambda p: _signature(p, at=int(time.time()) - 3600)),  # replayed an hour later
    (lambda order: _event(order), lambda p: "v1=abc"),
    (lambda order: _event(order, amount=1), _signature),
    (lambda order: _event(order, currency="eur"), _signature),
])
def test_webhooks_that_do_not_prove_the_payment_credit_nothing(signed_in, make, signed):
    user, _client = signed_in
    order = topup_order_create(user_id=user.pk, amount_usd=10, method="stripe")
    payload = make(order)
    assert _deliver(payload, signed(payload)).status_code == 400
    order.refresh_from_db()
    assert order.status == TopUpStatus.PENDING and not LedgerEntry.objects.filter(reason=LedgerReason.TOPUP).exists()


def test_other_events_are_acknowledged_and_ignored(signed_in):
    user, _client = signed_in
    order = topup_order_create(user_id=user.pk, amount_usd=10, method="stripe")
    for payload in (_event(order, kind="checkout.session.expired"), _event(order, status="unpaid")):
        assert _deliver(payload, _signature(payload)).json() == {"received": True}
    assert TopUpOrder.objects.get(pk=order.pk).status == TopUpStatus.PENDING


def test_stripe_unreachable_is_said_on_the_form(signed_in, monkeypatch):
    _user, client = signed_in

    def down(*args, **kwargs):
        raise httpx.ConnectError("no route")

    monkeypatch.setattr("billing.stripe.httpx.post", down)
    response = client.post("/topup/pay/", {"amount": "10", "method": "stripe"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and b"Stripe could not be reached: ConnectError" in response.content
    r = client.post("/api/user/pay", {"amount": 4, "payment_method": "stripe"}, content_type="application/json")
    assert r.status_code == 502 and r.json()["success"] is False


@pytest.mark.parametrize("currency, price, unit_amount, money", [
    ("jpy", Decimal("151.37"), "1514", Decimal("1514")),  # yen have no cents: the price is rounded to whole yen
    ("kwd", Decimal("0.31"), "3100", Decimal("3.10")),  # dinars count in thousandths
    ("eur", Decimal("0.93"), "930", Decimal("9.30")),
])
def test_amounts_are_in_each_currencys_smallest_unit(signed_in, stripe, settings, currency, price, unit_amount,
                                                     money):
    settings.STRIPE_PRICE, settings.STRIPE_CURRENCY = price, currency
    user, client = signed_in
    assert client.post("/topup/pay/", {"amount": "10", "method": "stripe"}).status_code == 302
    order = TopUpOrder.objects.get(user=user)
    assert order.money == money
    assert stripe[-1]["form"]["line_items[0][price_data][unit_amount]"] == unit_amount
    payload = _event(order, amount=int(unit_amount), currency=currency)
    assert _deliver(payload, _signature(payload)).status_code == 200
    assert TopUpOrder.objects.get(pk=order.pk).status == TopUpStatus.PAID
