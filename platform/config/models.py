"""Site options changed at run time by operators; each one overrides the setting of the same name."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class SiteOption(models.Model):
    """One operator-set value (`config.options` lists the names and their kinds)."""

    name = models.CharField(_("name"), max_length=64, unique=True)
    value = models.JSONField(_("value"))
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("site option")
        verbose_name_plural = _("site options")

    def __str__(self) -> str:
        return self.name
