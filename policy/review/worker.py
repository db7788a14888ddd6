"""``python -m policy.review.worker DIR START [bundle|query]``: the process ``policy_test`` runs Rego tests in.

Kept apart so that a test crashing the native interpreter ends this process,
not the review; see :func:`policy.review.testing.run_tests`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from policy.review.testing import worker_main

if __name__ == "__main__":
    worker_main(Path(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:4])
