"""Reading back, showing and judging: results, metrics summaries, console, reports, charts, live numbers."""
