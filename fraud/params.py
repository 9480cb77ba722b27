"""The training pipeline's parameters, defined once.

`TrainingParams` is the one declaration of what a training run takes (its data, split, search budget and operating
point) with each parameter's type, default, range and help text. Everything else is derived from it:

- the ``@dsl.pipeline`` signature (`pipelines.training`), through `pipeline_parameters`;
- the ``fraudctl pipeline run`` / ``submit`` options (`fraud.cli.pipeline`), through `cli_parameters`;
- the threshold defaults, which are `fraud.evaluation.thresholds`' own constants (the model's defaults are those
  constants, not copies of them) and the study's budget (`fraud.jobs.tune`).

A parameter added here appears in the pipeline, the compiled YAML and both CLI commands; a component that needs it
takes it from the pipeline by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from fraud.errors import ConfigError, PipelineError
from fraud.evaluation.thresholds import DEFAULT_ALERT_BUDGET, DEFAULT_REVIEW_COST, DEFAULT_REVIEW_SHARE
from fraud.features import FEATURE_SETS, FeatureSetName
from fraud.modeling import FAMILIES, Family, parse_families
from fraud.split import SplitBoundaries

_SPLIT: Final = SplitBoundaries()


class TrainingParams(BaseModel):
    """What one training run takes. Defaults suit a laptop-class machine (200k generated rows, 12 trials)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(
        default="generator",
        description="Data source: generator | PATH | s3://… | https://… | kaggle://ealaxi/paysim1.",
    )
    rows: int = Field(default=200_000, ge=1000, description="Rows to generate (generator source only).")
    seed: int = Field(default=7, description="Seed for the generator and the tuner.")
    scenario: str = Field(default="baseline", description="Generator scenario preset (see `fraudctl data scenarios`).")
    feature_set: FeatureSetName = Field(default="strict", description=f"Feature set: {' | '.join(FEATURE_SETS)}.")
    train_end_step: int = Field(default=_SPLIT.train_end_step, ge=1, description="Last step of the training block.")
    valid_end_step: int = Field(
        default=_SPLIT.valid_end_step,
        ge=2,
        description="Last step of the validation block; later steps are the test block.",
    )
    n_trials: int = Field(default=12, ge=1, description="Optuna trials.", json_schema_extra={"flag": "--trials"})
    timeout_s: float = Field(
        default=900.0,
        ge=0.0,
        description="Tuning time limit in seconds (0 = none).",
        json_schema_extra={"flag": "--timeout"},
    )
    families: str = Field(
        default=",".join(FAMILIES), description=f"Model families to search, comma-separated ({', '.join(FAMILIES)})."
    )
    alert_budget: float = Field(
        default=DEFAULT_ALERT_BUDGET, ge=0.0, le=1.0, description="Share of transactions analysts can review."
    )
    review_cost: float = Field(
        default=DEFAULT_REVIEW_COST, ge=0.0, description="Cost of reviewing one false alert (PaySim currency units)."
    )
    review_share: float = Field(
        default=DEFAULT_REVIEW_SHARE,
        ge=0.0,
        le=1.0,
        description="Share of transactions in the review band below the block threshold.",
    )

    @field_validator("families")
    @classmethod
    def _known_families(cls, value: str) -> str:
        parse_families(value)
        return value

    @model_validator(mode="after")
    def _ordered_split(self) -> TrainingParams:
        try:
            SplitBoundaries(self.train_end_step, self.valid_end_step)
        except PipelineError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def boundaries(self) -> SplitBoundaries:
        return SplitBoundaries(self.train_end_step, self.valid_end_step)

    @property
    def family_names(self) -> tuple[Family, ...]:
        return parse_families(self.families)

    @property
    def timeout(self) -> float | None:
        """The tuning time limit, None when unlimited."""
        return self.timeout_s if self.timeout_s > 0 else None

    def arguments(self) -> dict[str, Any]:
        """The pipeline's arguments (every parameter, by its pipeline name)."""
        return self.model_dump()

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> TrainingParams:
        """Validate raw values; a bad one is a `ConfigError` naming the parameter and the problem."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'parameters'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"invalid training parameters ({problems})") from None


LOCAL_DEFAULTS: Final = TrainingParams()
"""Defaults of a local run (``fraudctl pipeline run``, ``make demo`` overrides rows and trials)."""
CLUSTER_DEFAULTS: Final = TrainingParams(rows=1_000_000, n_trials=20, timeout_s=1800.0)
"""Defaults of a cluster submission (``fraudctl pipeline submit``): a bigger month and study."""


def wire_type(field: FieldInfo) -> type:
    """The plain type a parameter travels as (a KFP pipeline parameter, a CLI option): str, int, float or bool."""
    annotation = field.annotation
    if get_origin(annotation) is not None:  # Literal["strict", …] travels as its values' type
        return type(get_args(annotation)[0])
    assert isinstance(annotation, type)
    return annotation


def bounds(field: FieldInfo) -> tuple[float | None, float | None]:
    """The parameter's inclusive lower and upper bound, where the model declares one."""
    low = high = None
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.Ge):
            low = constraint.ge
        elif isinstance(constraint, annotated_types.Le):
            high = constraint.le
    return (None if low is None else float(low)), (None if high is None else float(high))  # type: ignore[arg-type]


def flag(name: str, field: FieldInfo) -> str:
    """The CLI flag of a parameter: ``--rows``, ``--train-end-step``; a few keep a shorter historical name."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("flag"), str):
        return str(extra["flag"])
    return "--" + name.replace("_", "-")


def pipeline_parameters(defaults: TrainingParams = LOCAL_DEFAULTS) -> list[inspect.Parameter]:
    """The parameters of a function taking every training parameter, typed as KFP takes them."""
    return [
        inspect.Parameter(
            name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=getattr(defaults, name), annotation=wire_type(field)
        )
        for name, field in TrainingParams.model_fields.items()
    ]


def cli_parameters(defaults: TrainingParams, option: Callable[..., Any]) -> list[inspect.Parameter]:
    """Keyword parameters for a Typer command: ``Annotated[type, option(flag, help=…, min=…, max=…)]`` each.

    ``option`` is ``typer.Option`` (passed in, so the domain does not import the CLI library).
    """
    parameters = []
    for name, field in TrainingParams.model_fields.items():
        low, high = bounds(field)
        kind = wire_type(field)
        info = option(
            flag(name, field),
            help=field.description,
            min=None if low is None else kind(low),
            max=None if high is None else kind(high),
        )
        parameters.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=getattr(defaults, name), annotation=Annotated[kind, info]
            )
        )
    return parameters


def with_signature(
    function: Callable[..., Any], parameters: list[inspect.Parameter], return_annotation: Any = None
) -> Callable[..., Any]:
    """Give ``function`` the signature (and annotations) that tools which introspect it read: KFP and Typer."""
    function.__signature__ = inspect.Signature(parameters, return_annotation=return_annotation)  # type: ignore[attr-defined]
    function.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": return_annotation}
    return function
