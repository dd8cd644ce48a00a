"""Online top-up endpoints: start a payment (`/api/user/pay`), and the gateways' word that it was paid
(`/api/user/epay/notify`, `/api/stripe/webhook`)."""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from billing.epay import PAID, epay_pay_url, epay_verified
from billing.models import TopUpOrder
from billing.stripe import StripeError, stripe_checkout_url, stripe_payment
from billing.topups import STRIPE, TopUpError, topup_currency, topup_order_complete, topup_order_create
from config.api import ok, validated

log = logging.getLogger(__name__)


class PayIn(serializers.Serializer):
    amount = serializers.IntegerField(help_text="Whole US dollars of quota.")
    payment_method = serializers.CharField(max_length=16)


def pay_url(request: HttpRequest, order: TopUpOrder) -> str:
    """The gateway page for `order`, told where to notify us and where to send the user back. Raises TopUpError
    when the gateway will not make one."""
    back = request.build_absolute_uri(reverse("console:topup_return"))
    if order.method == STRIPE:
        try:
            return stripe_checkout_url(trade_no=order.trade_no, name=_("Balance top-up"), money=order.money,
                                       success_url=f"{back}?{urlencode({'out_trade_no': order.trade_no})}",
                                       cancel_url=request.build_absolute_uri(reverse("console:topup")))
        except StripeError as exc:
            raise TopUpError(str(exc), status=502, code="payment_gateway_failed") from None
    return epay_pay_url(trade_no=order.trade_no, method=order.method, name=_("Balance top-up"), money=order.money,
                        notify_url=request.build_absolute_uri(reverse("epay-notify")), return_url=back)


@extend_schema(request=PayIn, responses=dict)
@api_view(["POST"])
def pay(request: Request) -> Response:
    """Start an online top-up: the order, and the gateway URL to send the user to."""
    data = validated(PayIn, request)
    order = topup_order_create(user_id=request.user.pk, amount_usd=data["amount"], method=data["payment_method"])
    return ok({"trade_no": order.trade_no, "money": str(order.money), "currency": topup_currency(order.method),
               "quota": order.quota, "url": pay_url(request, order)})


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Stripe's word that a Checkout Session was paid: the order is credited once for its exact amount."""
    try:
        payment = stripe_payment(request.body, request.headers.get("stripe-signature", ""))
    except StripeError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if payment is not None:
        if payment.currency != settings.STRIPE_CURRENCY.lower():
            log.warning("stripe payment for order %s in %s refused", payment.trade_no[:40], payment.currency)
            return JsonResponse({"error": "Unexpected currency."}, status=400)
        try:
            topup_order_complete(trade_no=payment.trade_no, gateway_trade_no=payment.session_id, money=payment.money)
        except TopUpError as exc:
            log.warning("stripe payment for order %s not credited: %s", payment.trade_no[:40], exc)
            return JsonResponse({"error": exc.message}, status=400)
    return JsonResponse({"received": True})


@csrf_exempt
@require_http_methods(["GET", "POST"])
def epay_notify(request: HttpRequest) -> HttpResponse:
    """The gateway's word that an order was paid. It wants `success` back, else it tries again later."""
    params = {name: value for name, value in (request.POST if request.method == "POST" else request.GET).items()}
    if not epay_verified(params) or params.get("trade_status") != PAID:
        log.warning("epay notification refused for order %s", params.get("out_trade_no", "")[:40])
        return HttpResponse("fail", content_type="text/plain")
    try:
        topup_order_complete(trade_no=params.get("out_trade_no", ""), gateway_trade_no=params.get("trade_no", ""),
                             money=Decimal(params.get("money", "")))
    except (TopUpError, InvalidOperation) as exc:
        log.warning("epay notification for order %s not credited: %s", params.get("out_trade_no", "")[:40], exc)
        return HttpResponse("fail", content_type="text/plain")
    return HttpResponse("success", content_type="text/plain")
