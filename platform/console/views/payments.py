"""Online top-up in the console: off to the payment gateway, and back to see the order's outcome."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from billing.api_topup import pay_url
from billing.models import TopUpOrder
from billing.topups import TopUpError, payment_methods, topup_order_create
from console.forms import PayForm
from console.views.common import is_htmx, login_required


@login_required
@require_POST
def topup_pay(request: HttpRequest) -> HttpResponse:
    """Make the order and send the browser to the gateway; the form comes back with what was wrong otherwise."""
    if not payment_methods():
        raise Http404
    form = PayForm(request.POST)
    if form.is_valid():
        try:
            order = topup_order_create(user_id=request.user.pk, amount_usd=form.cleaned_data["amount"],
                                       method=form.cleaned_data["method"])
            url = pay_url(request, order)
        except TopUpError as exc:
            form.add_error(None, exc.message)
        else:
            return HttpResponseClientRedirect(url) if is_htmx(request) else redirect(url)
    return render(request, "console/partials/pay_form.html", {"pay_form": form})


@login_required
def topup_return(request: HttpRequest) -> HttpResponse:
    """Where the gateway sends the user back: the order as we know it (only the gateway's notification credits)."""
    trade_no = request.GET.get("out_trade_no", "")
    order = TopUpOrder.objects.filter(trade_no=trade_no, user=request.user).first() if trade_no else None
    return render(request, "console/topup_return.html", {"order": order})
