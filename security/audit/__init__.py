"""The tamper-evident audit log of a community: append-only events in a SHA-256 hash chain.

Groundwork for the audit issue: events, the chain, the database's refusal to
change them, and verification of the live chain. Exports, checkpoints,
queries and the wiring into every PHI access come with that issue.
"""
