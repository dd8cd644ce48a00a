"""Routes of the management API under /api/ (paths follow new-api so existing scripts keep working)."""

from django.urls import path

urlpatterns: list = []
