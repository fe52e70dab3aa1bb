"""Classifier: severity P1-P4 and owner role from TOML rules, with the words that decided them."""

from classifier.engine import Classifier
from classifier.facts import MailFacts
from classifier.rules import RuleFileError
from classifier.verdict import RuleHit, Verdict

__all__ = ["Classifier", "MailFacts", "RuleFileError", "RuleHit", "Verdict"]
