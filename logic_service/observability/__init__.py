"""What a request leaves behind: its context (id, stage timings), log lines, metrics.

Used at every depth (the prediction log records the context, the shadow
runner counts comparisons), so it imports nothing else of logic_service.
"""
