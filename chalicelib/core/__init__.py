"""The pure core: business time, the SLA clock, alerts, tallies and documents.

Nothing here touches AWS, the environment or the clock; `make lint` enforces it (import-linter, see pyproject.toml)."""
