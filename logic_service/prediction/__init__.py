"""One predict request end to end (MLServer's ``handlers/``): route, run, follow up, log.

``service`` asks ``routing`` which version answers and retries once when the
graph tier lost it; ``runner`` runs a chosen version. The HTTP edge calls the
service; routing's follow-ups are handed the runner.
"""
