"""The tamper-evident audit log: one per community, in its schema, and the platform's own, in the public schema.

An event is staged in the transaction of what it records (``staging``) and
moved into the chain by the sequencer (``sequencer``), which hashes it as
``hashing`` says; signed checkpoints (``checkpoints``) pin the chain, and the
database refuses to change it. Exports (``exports``, ``formats``) carry a
range out with a signed manifest; ``offline`` verifies one with nothing but
the public keys, ``live`` verifies the chain in the database. Also here: the
event queries, the accounting of disclosures, retention purges, and the
middleware that records every request on a community's host. Never PHI:
participants appear by pseudonym.
"""
