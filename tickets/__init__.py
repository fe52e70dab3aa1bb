"""The domain every room shares: models, store, clock, SLA calendar, hypercare phases."""
