"""The test suite: a folder per package, mostly (``tests/audit`` holds ``security.audit`` and ``security.breakglass``,
``tests/services`` all five research apps), plus ``tests/integration`` (scripts against a served app),
``tests/architecture`` (the import contract, the docs' links) and ``tests/doubles`` (loopback OPA and Vault).
"""
