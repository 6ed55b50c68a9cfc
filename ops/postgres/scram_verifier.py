"""Print the PostgreSQL scram-sha-256 verifier of the password in a file (standard library only).

Usage: python3 ops/postgres/scram_verifier.py PASSWORD_FILE

``ALTER ROLE ... PASSWORD '<verifier>'`` stores it as is, so the password itself never travels
to the server and cannot end up in its log (a failed statement is logged with its text).
Format (PostgreSQL's scram_build_secret): SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sys

ITERATIONS = 4096  # PostgreSQL's default scram_iterations


def verifier(password: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as f:
        password = f.read().strip()
    print(verifier(password, secrets.token_bytes(16)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
