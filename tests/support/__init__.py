"""Helpers the tests share (hosts, clients, tokens, audit, exports, a reference canonical JSON); no fixtures."""
