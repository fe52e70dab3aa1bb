"""The hand-over kit for weeks 3-4: knowledge-base drafts and the backlog export for the ongoing support tool."""
