"""Access policy as code: Rego in ``policy/rego/``, the engines that evaluate it, the DRF permission.

Nothing in this package imports ``services``; access decisions live in Rego only.
"""
