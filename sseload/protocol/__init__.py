"""Sans-I/O: the HTTP response state machine, the SSE parser, LLM chunks, outcomes."""
