"""Cost of signing one request (SDK-HMAC-SHA256), as the harness does per stream.

    python bench/sign_bench.py

The body hash is computed once per distinct body (PreparedRequest) and passed in, so a large
body is not re-hashed per stream; the "hash every time" rows show what that saves.
"""

from __future__ import annotations

import hashlib
import time

from sseload.auth.apig import sign

URL = "https://0f1e2d3c4b5a.apig.cn-southwest-2.huaweicloudapis.com/v1/infers/468d146d/v1/chat/completions"
HEADERS = {"Content-Type": "application/json"}


def per_call_us(fn, n: int) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t) / n)
    return best * 1e6


def main() -> None:
    print(f"{'body':>10}  {'hash passed in (us)':>20}  {'hash every time (us)':>21}")
    for size in (100, 100_000, 12 * 1024 * 1024):
        body = b"x" * size
        digest = hashlib.sha256(body).hexdigest()
        n = 20_000 if size <= 100_000 else 200
        cached = per_call_us(
            lambda body=body, digest=digest: sign("POST", URL, HEADERS, body, "AK", "SK", payload_hash=digest), n)
        fresh = per_call_us(lambda body=body: sign("POST", URL, HEADERS, body, "AK", "SK"), max(20, n // 100))
        print(f"{size:>10}  {cached:>20.1f}  {fresh:>21.1f}")


if __name__ == "__main__":
    main()
