"""The desk's reaction to mail on an existing ticket: the reply rules (router.py), what a reporter's
reply means (reporter_reply.py), a team member's commands (team_reply.py, command_syntax.py,
command_effects.py) and ratings (ratings.py)."""
