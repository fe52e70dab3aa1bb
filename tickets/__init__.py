"""The domain every room shares and that imports no room: models, store, clock, SLA and calendar,
phases, tokens, lifecycle operations, health, and how the desk recognises its own mail."""
