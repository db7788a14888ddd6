"""The tamper-evident audit log: one per community, in its schema, and the platform's own, in the public schema.

Events are staged in the transaction of the access they record and chained
by a sequencer into a SHA-256 hash chain, which signed checkpoints pin. Also
here: the event queries, exports with signed manifests and their offline
verification, the accounting of disclosures, retention purges, and the
middleware that records every request on a community's host. Never PHI:
participants appear by pseudonym.
"""
