"""Online top-up endpoints: start a payment (`/api/user/pay`), and the gateway's notification
(`/api/user/epay/notify`)."""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from billing.epay import PAID, epay_pay_url, epay_verified
from billing.models import TopUpOrder
from billing.topups import TopUpError, topup_order_complete, topup_order_create
from config.api import ok, validated

log = logging.getLogger(__name__)


class PayIn(serializers.Serializer):
    amount = serializers.IntegerField(help_text="Whole US dollars of quota.")
    payment_method = serializers.CharField(max_length=16)


def pay_url(request: HttpRequest, order: TopUpOrder) -> str:
    """The gateway page for `order`, told where to notify us and where to send the user back."""
    return epay_pay_url(
        trade_no=order.trade_no, method=order.method, name=_("Balance top-up"), money=order.money,
        notify_url=request.build_absolute_uri(reverse("epay-notify")),
        return_url=request.build_absolute_uri(reverse("console:topup_return")),
    )


@extend_schema(request=PayIn, responses=dict)
@api_view(["POST"])
def pay(request: Request) -> Response:
    """Start an online top-up: the order, and the gateway URL to send the user to."""
    data = validated(PayIn, request)
    order = topup_order_create(user_id=request.user.pk, amount_usd=data["amount"], method=data["payment_method"])
    return ok({"trade_no": order.trade_no, "money": str(order.money), "quota": order.quota,
               "url": pay_url(request, order)})


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
