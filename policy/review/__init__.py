"""Review tooling for security teams: run the Rego tests, explain a decision, diff two policies.

Everything here runs on a laptop or in CI without an OPA server. The Rego
tests run under the embedded engine (regopy) and, where it is installed,
under regorus too (:mod:`policy.review.second_engine`), and a test passes
only when it passes under each. ``opa test`` has not been run here; the
policy and its tests avoid what the engines are known to disagree on
(``docs/operations/policy.md``, ``docs/adr/0005-embedded-rego-and-its-limits.md``).

One module per tool, each behind one management command:

- :mod:`policy.review.testing` (``policy_test``): the ``test_`` rules and
  which rule clauses they reach, run in :mod:`policy.review.worker` processes;
  :mod:`policy.review.second_engine` runs them under regorus.
- :mod:`policy.review.explain` (``policy_eval``): one decision and every rule
  that fed it.
- :mod:`policy.review.diff` (``policy_diff``): the recorded decisions a policy
  change flips, for a terminal or a pull request.
"""
