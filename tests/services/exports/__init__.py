"""Tests of services/exports/: the API, the task, storage, sealing and de-identification."""
