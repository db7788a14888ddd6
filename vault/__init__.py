"""Per-community keys, envelope encryption of PHI fields, blind indexes, rotation, crypto-shredding.

Keys come from Vault Transit (production) or a local provider (development).
Nothing here imports ``services``: models opt in by using the encrypted fields.
"""
