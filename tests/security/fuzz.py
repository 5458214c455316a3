"""Schemathesis, bounded and repeatable: every operation of an OpenAPI schema gets a fixed
number of generated requests, sent in-process (ASGI), and each answer is checked.

Hypothesis runs derandomized (the same cases on every run), without deadline (a slow answer
is not a failure here), without its example database (nothing written to disk) and without
shrinking: a failure is recorded with its curl line and the run goes on, so one report lists
every operation that failed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis import checks as st_checks
from schemathesis.checks import load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.schemas import APIOperation, BaseSchema

load_all_checks()
RESPONSE_CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_headers_conformance,
    st_checks.response_schema_conformance,
]
"""Checks of every answer: no 5xx, and status, content type, headers and body as documented."""
NEGATIVE_CHECKS = [*RESPONSE_CHECKS, st_checks.negative_data_rejection]
"""Checks of an answer to a request that breaks the schema: also refused with a 4xx."""

MAX_EXAMPLES = {GenerationMode.POSITIVE: 16, GenerationMode.NEGATIVE: 8}
"""Generated requests per operation and mode (at most; fewer when the inputs allow fewer):
24 per operation in all, plus the schema's examples."""


def bounded(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


@dataclass
class Report:
    """What a fuzz run sent and found."""

    operations: set[str] = field(default_factory=set)
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    failures: dict[str, list[str]] = field(default_factory=dict)
    """Operation -> its failures (the first few of each kind), with a curl line each."""
    no_negative: set[str] = field(default_factory=set)
    """Operations for which no request breaking the schema could be made."""

    def add(self, other: Report) -> None:
        self.operations |= other.operations
        self.cases += other.cases
        self.statuses.update(other.statuses)
        self.server_errors += other.server_errors
        self.no_negative |= other.no_negative
        for label, found in other.failures.items():
            self.failures.setdefault(label, []).extend(found)

    def summary(self) -> str:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        return (
            f"{len(self.operations)} operations, {self.cases} requests ({statuses}); "
            f"{len(self.server_errors)} server errors, "
            f"{sum(map(len, self.failures.values()))} check failures"
        )

    def problems(self) -> str:
        lines = [*self.server_errors]
        for label, found in sorted(self.failures.items()):
            lines += [f"{label}: {text}" for text in found]
        return "\n".join(lines)


def operations(schema: BaseSchema) -> list[APIOperation]:
    """Every operation of ``schema`` (a schema that cannot be turned into tests fails here)."""
    found = []
    for result in schema.get_all_operations():
        found.append(result.ok())
    return found


Check = Callable[..., Any]
Prepare = Callable[[Case], None]


def fuzz(
    operation: APIOperation,
    mode: GenerationMode,
    *,
    token: str | None = None,
    checks: Iterable[Check] | None = None,
    max_examples: int | None = None,
    prepare: Prepare | None = None,
    expect: Callable[[Case, Any], str | None] | None = None,
    **fixed: Any,
) -> Report:
    """Send ``max_examples`` requests generated for ``operation`` in ``mode`` (schema
    examples first, in positive mode) and check each answer. ``token``: the bearer token of
    every request (it replaces the Authorization header schemathesis makes up for the
    security scheme); None: no Authorization header at all; ``prepare``: changes a case
    before it is sent; ``expect``: an extra
    check of (case, response), answering what is wrong or None; ``fixed``: values given to
    ``as_strategy`` (``path_parameters={...}``)."""
    report = Report(operations={operation.label})
    chosen = list(
        checks or (NEGATIVE_CHECKS if mode is GenerationMode.NEGATIVE else RESPONSE_CHECKS)
    )
    kinds: Counter[str] = Counter()

    def record(kind: str, text: str, case: Case | None) -> None:
        kinds[kind] += 1
        if kinds[kind] <= 2:
            curl = f"\n    {case.as_curl_command()}" if case is not None else ""
            report.failures.setdefault(operation.label, []).append(text + curl)

    def send(case: Case) -> None:
        case.headers = {
            k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
        }
        if token is not None:
            case.headers["Authorization"] = f"Bearer {token}"
        if prepare is not None:
            prepare(case)
        response = case.call()
        report.cases += 1
        report.statuses[response.status_code] += 1
        if response.status_code >= 500:
            report.server_errors.append(
                f"{operation.label}: {response.status_code} {response.text[:300]!r}\n"
                f"    {case.as_curl_command()}"
            )
        try:
            case.validate_response(response, checks=chosen)
        except FailureGroup as group:
            for failure in group.exceptions:
                record(
                    failure.code, f"{failure.code} {failure.title}: {failure.message[:400]}", case
                )
        if expect is not None and (problem := expect(case, response)) is not None:
            record("expect", problem, case)

    strategies: list[st.SearchStrategy[Case]] = []
    if mode is GenerationMode.POSITIVE and not fixed:
        strategies += operation.schema.get_strategies_from_examples(operation)
    strategies.append(operation.as_strategy(generation_mode=mode, **fixed))
    budget = max_examples if max_examples is not None else MAX_EXAMPLES[mode]
    for index, strategy in enumerate(strategies):
        last = index == len(strategies) - 1
        run = given(case=strategy)(send)
        try:
            bounded(budget if last else 1)(run)()
        except (hypothesis.errors.Unsatisfiable, hypothesis.errors.FailedHealthCheck) as exc:
            if mode is GenerationMode.NEGATIVE:
                # nothing of the request can break the schema (a free-text path parameter)
                report.no_negative.add(operation.label)
            else:
                record("generation", f"no requests could be generated: {exc}", None)
    return report
