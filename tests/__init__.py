"""The test suite, laid out like the code: ``tests/<package>/<app>/test_<module>.py``.

``tests/security/audit/test_sequencer.py`` tests ``security/audit/sequencer.py``;
a test that spans a package's apps sits at the package's level
(``tests/services/test_isolation.py``). Tests across packages live in
``tests/architecture/`` (the import contract, the house style) and
``tests/integration/``. Beside them: ``tests/doubles/`` (loopback doubles of OPA
and Vault), ``tests/support/`` (the helpers tests share: hosts and clients,
tokens without a sign-in, audit and export helpers), ``tests/factories.py``
(factory_boy, ``community=`` for tenant models). Fixtures live in ``conftest.py``
files only, and no test imports one. Benchmarks are in ``bench/``, not here.
"""
