"""Study routes under ``/api/v1/``."""

from django.urls import path

from services.studies import apis

urlpatterns = [
    path("studies/", apis.StudyListApi.as_view(), name="study-list"),
    path("studies/<uuid:pk>/", apis.StudyDetailApi.as_view(), name="study-detail"),
]
