"""Helpers the tests share (clients, hosts, tokens, reference implementations); fixtures stay in conftest."""
