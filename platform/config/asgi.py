"""ASGI entry: relay prefixes (/v1/, /v1beta/) go to the relay's own app; everything else to Django.
WebSockets: /v1/realtime is the Realtime API relay; other paths are refused."""

import asyncio
import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (Django must be set up first)
from django.conf import settings  # noqa: E402

from config.daphne_tuning import tune_daphne  # noqa: E402
from config.ops import PATHS as OPS_PATHS, ops_app  # noqa: E402
from relay.asgi import SHUTDOWN, RelayApp, is_relay_path  # noqa: E402
from relay.realtime.consumer import SESSIONS_END_SECONDS, sessions_end_for_restart, websocket_app  # noqa: E402
from relay.tokenizer import counter_load  # noqa: E402

relay_app = RelayApp()
realtime_app = websocket_app(snapshots=relay_app.snapshots, limits=relay_app.limits,
                             on_failure=relay_app.upstream_failed)


async def http_app(scope, receive, send):  # type: ignore[no-untyped-def]
    relay_app.listen_for_changes()  # from the first request on, whatever its path (health checks come first)
    if scope["path"] in OPS_PATHS:
        await ops_app(scope, receive, send)
    elif is_relay_path(scope["path"]):
        await relay_app(scope, receive, send)
    else:
        await django_asgi(scope, receive, send)


application = ProtocolTypeRouter({"http": http_app, "websocket": realtime_app})


def _on_server_stop() -> None:
    """Under Daphne (Twisted), mark the process as stopping before Daphne cancels the requests in flight: /readyz
    answers 503 and the relay lets calls finish within RELAY_SHUTDOWN_GRACE_SECONDS. Realtime sessions are told and
    closed (1012), the reactor waiting for them."""
    import sys

    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import defer, reactor

        def stopping() -> defer.Deferred:
            SHUTDOWN.set()
            return defer.Deferred.fromFuture(asyncio.ensure_future(sessions_end_for_restart(SESSIONS_END_SECONDS)))

        reactor.addSystemEventTrigger("before", "shutdown", stopping)


_on_server_stop()
tune_daphne(access_log=settings.ACCESS_LOG)
counter_load()  # now, rather than during the first relayed request (a tenth of a second)

# What starting made (Django, the apps, their modules and caches) lives as long as the process. Frozen, it is left out
# of the cycle collector's full passes, which otherwise held the event loop for 80-130 ms every few seconds under load
# (about 150,000 objects to walk each time).
gc.freeze()
