"""The scenario: its model, checks, request flags, bodies, load shapes and arrivals."""
