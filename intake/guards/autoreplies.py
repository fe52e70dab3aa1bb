"""Recognising automatic replies people set up: out-of-office and vacation subjects.

Why a module of its own: the subject list is long, multilingual and grows with each
language customers write in; kept here, ``intake.guards.rules`` stays a readable table of rules.
"""

from __future__ import annotations

import re

OOO_SUBJECT = re.compile(
    r"out of (?:the )?office|away from (?:the |my )?office|^\s*auto(?:matic)?[- ]?(?:reply|response)\b|"
    r"\bautoreply\b|automatic reply|^\s*auto:|on vacation|vacation (?:reply|message|notice)|"
    r"abwesenheit|automatische antwort|automatische r[üu]ckantwort|nicht im b[üu]ro|"
    r"r[ée]ponse automatique|absence du bureau|message d'absence|respuesta autom[áa]tica|"
    r"fuera de la oficina|risposta automatica|fuori (?:sede|ufficio)|automatisch antwoord|afwezig|"
    r"resposta autom[áa]tica|fora do escrit[óo]rio|aus[êe]ncia tempor[áa]ria|automatyczna odpowied|"
    r"nieobecno|autosvar|fr[åa]nvaro|frav[æa]r|ikke p[åa] kontoret|automaattinen vastaus|"
    r"автоответ|автоматический ответ|自動応答|自動返信|不在|自动回复|自動回覆|automātiskā atbilde|"
    r"automatiska atbilde|[āa]rpus biroja|automatinis atsakymas|automaatne vastus|"
    r"automatick[áa] odpov[ěe]ď|automatikus v[áa]lasz|otomatik (?:yan[ıi]t|cevap)",
    re.I,
)
