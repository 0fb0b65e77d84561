"""The file contract: stream records, the recorder, workers' batches, harness health, secrets masked."""
