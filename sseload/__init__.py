"""sseload: load and latency benchmarking for Server-Sent Events services."""

__version__ = "0.1.0"
SCHEMA_VERSION = 1
