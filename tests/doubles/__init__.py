"""Loopback HTTP doubles of servers that cannot be installed here, written from their API docs."""
