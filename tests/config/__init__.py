"""Tests of config/: the settings a deployment starts with."""
