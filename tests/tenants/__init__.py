"""Tests of tenants/: the community lifecycle, hosts and schema isolation."""
