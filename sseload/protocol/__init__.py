"""Sans-I/O, one concept per module: an HTTP/1.1 body's framing (framing), the SSE parser and the
per-stream event log (sse, with its compiled twin beside it in C), OpenAI-style chunks (openai), the
response and its states (response, state), how a stream ended (classify, outcomes, gateway), and a
reconnecting feed (feed)."""
