"""Sockets and threads: the HTTP connection, TLS, the reader that times every read."""
