"""Mail out: rendering (jinja2 -> text+HTML MIME), the durable outbox, transports, escalations, digests."""
