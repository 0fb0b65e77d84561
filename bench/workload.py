"""The request every hand-written baseline sends (bench/naive_locustfile.py, bench/raw_client.py)."""

PATH = "/v1/infers/00000000-0000-4000-8000-000000000000/v1/stream"
BODY = b'{"model":"sseload","stream":true,"messages":[{"role":"user","content":"hi"}]}'
HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}
