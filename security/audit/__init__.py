"""The tamper-evident audit log of a community: append-only events in a SHA-256 hash chain.

An event is staged in the transaction of what it records (``staging``) and
moved into the chain by the sequencer (``sequencer``), which hashes it as
``hashing`` says; signed checkpoints (``checkpoints``) pin the chain, and the
database refuses to change it. Exports (``exports``, ``formats``) carry a
range out with a signed manifest; ``offline`` verifies one with nothing but
the public keys, ``live`` verifies the chain in the database.
"""
