"""The exactly-once checker: a pure verdict on a run's history and committed output (see `check`)."""

from chaos.checker.check import ERROR_TYPES, check
from chaos.checker.model import BatchOutput, CommittedOutput

__all__ = ["ERROR_TYPES", "BatchOutput", "CommittedOutput", "check"]
