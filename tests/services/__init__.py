"""Tests of services/, the research apps, one package per app; cross-app tests at this level."""
