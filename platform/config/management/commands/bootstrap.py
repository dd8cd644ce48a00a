"""Seed a fresh installation: the admin account, the default group, model prices and the demo upstream.

Safe to re-run: existing rows are left as the operator changed them.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User, UserRole
from billing.default_prices import DEFAULT_PRICES, DEMO_MODELS, DEMO_TASK_MODELS, PRICE_EXTRAS
from billing.groups import group_default
from billing.models import ModelPrice
from config.env import env, var_path
from relay.models import Upstream
from tokens.keys import secret_generate


class Command(BaseCommand):
    help = "Create the admin account, default group, model prices and demo upstream if they are missing."

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        group = group_default()
        self._admin(group)
        created = 0
        seeds = {
            model: dict(provider=provider, category=category, context_window=window, model_ratio=ratio,
                        completion_ratio=completion, cache_ratio=cache)
            for model, provider, category, window, ratio, completion, cache in DEFAULT_PRICES
        }
        for model, fields in PRICE_EXTRAS.items():
            seeds[model] = {**seeds.get(model, {}), **fields}
        for model, fields in seeds.items():
            _price, made = ModelPrice.objects.get_or_create(model=model, defaults=fields)
            created += made
        if created:
            self.stdout.write(f"Seeded {created} model prices.")
        if not Upstream.objects.filter(type="demo").exists():
            demo = Upstream(name="Demo", type="demo", served_models=DEMO_MODELS + DEMO_TASK_MODELS,
                            test_model="demo-chat")
            demo.save()
            demo.groups.add(group)
            self.stdout.write("Created the demo upstream.")

    def _admin(self, group: object) -> None:
        if User.objects.filter(is_superuser=True).exists():
            return
        password = env("ADMIN_PASSWORD")
        generated = password is None
        if generated:
            password = secret_generate(20)
            path = var_path("admin_password.txt")
            path.write_text(password + "\n")
            path.chmod(0o600)
        User.objects.create_superuser(
            username="admin", password=password, email="", group=group, role=UserRole.ADMIN,
            display_name="Administrator", invite_code=secret_generate(8),
        )
        where = f" (kept in {var_path('admin_password.txt')})" if generated else " (from ADMIN_PASSWORD)"
        shown = password if generated else "********"
        self.stdout.write(self.style.SUCCESS(f"Admin account: admin / {shown}{where}"))
