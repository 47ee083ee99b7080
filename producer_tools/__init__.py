"""Command-line tools around the export service: seed, check metrics, replay."""
