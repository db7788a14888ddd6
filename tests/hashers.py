"""A cheaper Argon2 for the test suite (same algorithm, lower cost)."""

from django.contrib.auth.hashers import Argon2PasswordHasher


class FastArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2id with test-sized cost parameters."""

    time_cost = 1
    memory_cost = 1024
    parallelism = 1
