"""Routes of de-identified exports."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
