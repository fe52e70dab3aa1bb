"""Human words for the contract's codes, shared by every template and the CLI."""

from __future__ import annotations

SEVERITY_LABELS = {
    "P1": "P1 Critical",
    "P2": "P2 Major",
    "P3": "P3 Minor",
    "P4": "P4 Enhancement",
}

ROLE_LABELS = {
    "crm_admin": "CRM admin",
    "business_analyst": "Business analyst",
    "technical_consultant": "Technical consultant",
    "project_manager": "Project manager",
}

STATUS_LABELS = {
    "new": "New",
    "acknowledged": "Acknowledged",
    "in_progress": "In progress",
    "waiting_on_customer": "Waiting on you",
    "resolved": "Resolved",
    "closed": "Closed",
}


def severity_label(code: str) -> str:
    return SEVERITY_LABELS.get(code, code)


def role_label(code: str) -> str:
    return ROLE_LABELS.get(code, code)


def status_label(code: str) -> str:
    return STATUS_LABELS.get(code, code)
