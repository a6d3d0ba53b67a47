"""The password hasher: Argon2id with OWASP's minimum parameters (docs/authentication.md, "Password hashing").

Django's ``Argon2PasswordHasher`` (argon2-cffi) defaults to 100 MiB, two passes and eight lanes. Dossier uses
OWASP's Password Storage Cheat Sheet minimum for Argon2id instead: **m = 19 MiB (19456 KiB), t = 2, p = 1**.
Memory-hard against offline guessing on GPUs, and about a tenth of the CPU time of the PBKDF2 hash it replaces,
which every sign-in and every signature pays. One lane, because a web worker hashing for one request should not
take every core of the host. The hasher's name stays ``argon2``: a stored hash with other parameters (Django's
defaults, or these raised later) verifies and is rewritten with these at the next successful check.
"""

from django.contrib.auth.hashers import Argon2PasswordHasher

ARGON2_TIME_COST = 2
ARGON2_MEMORY_COST_KIB = 19 * 1024
ARGON2_PARALLELISM = 1


class Argon2idPasswordHasher(Argon2PasswordHasher):
    """Argon2id (Django's hasher always uses the ``id`` variant) at OWASP's m=19 MiB, t=2, p=1."""

    time_cost = ARGON2_TIME_COST
    memory_cost = ARGON2_MEMORY_COST_KIB
    parallelism = ARGON2_PARALLELISM
