"""Tests of security/: its commands, the dependency scan and CommunityTask; identity, audit and break-glass below."""
