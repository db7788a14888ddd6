"""Review tooling for security teams: run the Rego tests, explain a decision, diff two policies.

Everything here uses the embedded engine, so it runs on a laptop or in CI
without an OPA server. ``opa test`` agrees on all but two of the Rego tests:
the embedded engine's ``object.union`` merges the top level only (see
``docs/adr/0005-embedded-rego-and-its-limits.md``).
One module per tool, each behind one management command:

- :mod:`policy.review.testing` (``policy_test``): the ``test_`` rules and
  which rule clauses they reach, run in :mod:`policy.review.worker` processes.
- :mod:`policy.review.explain` (``policy_eval``): one decision and every rule
  that fed it.
- :mod:`policy.review.diff` (``policy_diff``): the recorded decisions a policy
  change flips, for a terminal or a pull request.
"""
