"""export-consumer: turns Kafka record batches into CSV files and PDF reports, on request."""

from __future__ import annotations

__version__ = "0.1.0"
