"""The scenario: its model (dataclasses), loading and checking it, the request flags, bodies,
distributions, and the open model's arrivals."""
