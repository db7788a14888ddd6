"""Routes (filled in with the APIs)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
