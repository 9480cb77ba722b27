"""Named scenario presets for the generator: the published month, and controlled departures from it.

Drift detection and canary analysis need data whose difference from the training data is known in advance. Each
preset changes one aspect of the generated month (amounts, type mix, fraud pattern, fraud rate, time window) and
leaves the rest as in the baseline. Every aspect has its own random stream, so with the same seed an amount shift
differs from the baseline in the amounts (and the balances they move) only; presets that change how many rows of
a kind there are (type mix, fraud) redraw the rows they reshape, with the baseline's distributions for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fraud.errors import ConfigError
from fraud.schema import TRANSACTION_TYPES

FraudPattern = Literal["takeover", "smurfing"]


class Scenario(BaseModel):
    """Everything the generator needs to know about how the month departs from the published one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "baseline"
    description: str = "The published PaySim month."
    amount_factor: float = Field(default=1.0, gt=0, le=1e4, description="Multiplies legitimate amounts.")
    amount_types: tuple[str, ...] = Field(
        default=(), description="Types whose amounts `amount_factor` applies to; empty means every type."
    )
    type_shares: dict[str, float] | None = Field(
        default=None,
        description="Shares of legitimate rows by type; types left out keep their published share, then all are "
        "normalised to sum to 1.",
    )
    fraud_rate_multiplier: float = Field(default=1.0, ge=0, le=200, description="Multiplies the fraud rate.")
    fraud_pattern: FraudPattern = Field(default="takeover", description="How fraudsters empty a victim's account.")
    smurf_chunks: int = Field(default=12, ge=2, le=200, description="Smurfing: small transfers per victim.")
    smurf_chunk_max: float = Field(default=9_500.0, gt=0, le=1e7, description="Smurfing: largest single transfer.")
    start_step: int = Field(default=1, ge=1, le=1_000_000, description="Step of the first generated hour.")

    @field_validator("amount_types")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(TRANSACTION_TYPES))
        if unknown:
            raise ValueError(f"unknown transaction type(s) {unknown}; valid: {', '.join(TRANSACTION_TYPES)}")
        return value

    @field_validator("type_shares")
    @classmethod
    def _valid_shares(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - set(TRANSACTION_TYPES))
        if unknown:
            raise ValueError(f"unknown transaction type(s) {unknown}; valid: {', '.join(TRANSACTION_TYPES)}")
        if any(share < 0 for share in value.values()):
            raise ValueError("shares must be >= 0")
        return dict(value)

    def amount_multiplier(self, tx_type: str) -> float:
        """The factor applied to legitimate amounts of one type."""
        if self.amount_types and tx_type not in self.amount_types:
            return 1.0
        return self.amount_factor

    def legit_type_shares(self, published_shares: Mapping[str, float]) -> dict[str, float]:
        """The legitimate type mix this scenario asks for, normalised.

        Raises:
            ConfigError: the shares sum to zero.
        """
        shares = {t: float(published_shares[t]) for t in TRANSACTION_TYPES}
        shares.update(self.type_shares or {})
        total = sum(shares.values())
        if total <= 0:
            raise ConfigError(f"scenario '{self.name}': type shares sum to zero")
        return {t: shares[t] / total for t in TRANSACTION_TYPES}


@dataclass(frozen=True)
class Preset:
    """A named scenario: its one-line description and the parameters a user may override."""

    description: str
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        """The parameters this preset takes, with their defaults."""
        return dict(self.defaults)


SCENARIOS: Final[Mapping[str, Preset]] = {
    "baseline": Preset("The published PaySim month, as faithfully as the generator can make it."),
    "amount_shift": Preset(
        "Legitimate amounts multiplied by amount_factor (default 2.0), optionally only for amount_types.",
        {"amount_factor": 2.0, "amount_types": ()},
    ),
    "type_mix": Preset(
        "Legitimate type mix changed to type_shares (default: TRANSFER 20%, PAYMENT 25%, fewer of the rest).",
        {"type_shares": {"CASH_OUT": 0.33, "PAYMENT": 0.25, "CASH_IN": 0.21, "TRANSFER": 0.20, "DEBIT": 0.01}},
    ),
    "smurfing": Preset(
        "New fraud pattern: victims drained by smurf_chunks small transfers of at most smurf_chunk_max each.",
        {"fraud_pattern": "smurfing", "smurf_chunks": 12, "smurf_chunk_max": 9_500.0, "fraud_rate_multiplier": 1.0},
    ),
    "fraud_rate": Preset(
        "Fraud rate multiplied by fraud_rate_multiplier (default 3.0); the fraud pattern is unchanged.",
        {"fraud_rate_multiplier": 3.0},
    ),
    "next_month": Preset(
        "The following month: steps start at start_step (default 744), right after the published 743.",
        {"start_step": 744},
    ),
}


def get_scenario(name: str, **params: Any) -> Scenario:
    """The named preset, with some of its parameters overridden.

    Raises:
        ConfigError: the name is unknown, a parameter is not one this preset takes, or a value is invalid; the
            message lists what is valid.
    """
    preset = SCENARIOS.get(name)
    if preset is None:
        raise ConfigError(f"unknown scenario '{name}'; valid scenarios: {', '.join(SCENARIOS)}")
    unknown = sorted(set(params) - set(preset.defaults))
    if unknown:
        valid = ", ".join(preset.defaults) or "none"
        raise ConfigError(f"scenario '{name}' takes no parameter {', '.join(unknown)}; valid parameters: {valid}")
    values = {**preset.defaults, **{key: _from_text(key, value) for key, value in params.items()}}
    try:
        return Scenario(name=name, description=preset.description, **values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"scenario '{name}': {problems}") from exc


def _from_text(key: str, value: Any) -> Any:
    """Parameters typed on a command line or in a URL arrive as text: ``TRANSFER,CASH_OUT`` for a list of types,
    ``TRANSFER=0.2,PAYMENT=0.3`` (or ``:``) for shares; numbers are left to pydantic's conversion."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if key == "amount_types":
        return tuple(part.strip().upper() for part in text.split(",") if part.strip())
    if key == "type_shares":
        shares: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, share = item.replace(":", "=").partition("=")
            if not sep:
                raise ConfigError(f"type_shares expects TYPE=SHARE pairs separated by commas, got '{value}'")
            shares[name.strip().upper()] = share.strip()
        return shares
    return text
