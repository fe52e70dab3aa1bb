"""Raw mail in: receivers (SMTP, IMAP, files), parsing, guards, threading, the ingest pipeline."""
