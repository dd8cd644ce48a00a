from django.apps import AppConfig
from django.db.models.signals import pre_delete


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from billing.books import row_lock_before_delete
        from billing.models import UsageLog
        from tokens.models import ApiToken

        upstream = UsageLog._meta.get_field("upstream").related_model
        for model in (ApiToken, upstream):
            pre_delete.connect(row_lock_before_delete, sender=model, dispatch_uid=f"books-lock-{model.__name__}")
