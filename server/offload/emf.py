"""CloudWatch Embedded Metric Format (EMF) records of the SN's offload decisions: one JSON
object per request that could have gone to the chunk_read Lambda, whichever plan it got
(`dn` or `lambda`). CloudWatch Logs turns each into metrics in namespace `h5cloud` with
dimensions FunctionName and Plan; the dataset id and the request kind ride along as plain
log fields (searchable in Logs Insights, no metric cost).

CloudWatch only reads a log event as EMF when the event is the JSON object alone: no
timestamp, level or logger name before it. The SN's own log format prefixes those, so a
deployment routes the logger named EMF_LOGGER to a handler of its own with a bare
`%(message)s` formatter (install() does that) and switches records on with the setting
`cloudwatch_emf` (enabled()).

Standard library only: see the specification at
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""
import json
import logging
import math
import sys
import time

NAMESPACE = "h5cloud"
EMF_LOGGER = "h5cloud.emf"
DIMENSIONS = [["FunctionName", "Plan"]]
PLANS = ("dn", "lambda")


def enabled(settings) -> bool:
    """Whether the SN writes EMF records: the setting `cloudwatch_emf` (off by default;
    a string from the environment counts when it reads 1/true/yes/on)."""
    value = getattr(settings, "cloudwatch_emf", False)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def decision_record(*, plan: str, kind: str, dataset: str, chunks: int, est_dn_ms: float,
                    est_lambda_ms: float, ms: float | None, invocations: int, fallbacks: int,
                    cost_usd: float, explored: bool, function: str,
                    now: float | None = None) -> dict:
    """The EMF object of one offload decision.

    plan: "dn" or "lambda" (the plan the request got); kind: "read" or "query";
    dataset: the dataset id; chunks: chunk tasks decided on; est_*_ms: the cost model's
    estimates for both plans; ms: measured time of the chosen plan (None when not
    measured: MeasuredMs and ModelError are left out); invocations/fallbacks: chunk_read
    calls and batches the DNs read instead; cost_usd: the calls' estimated price;
    explored: the plan was chosen to test the model, not because it looked faster;
    function: the chunk_read function's name (the FunctionName dimension);
    now: seconds since the epoch (default: the clock).

    A metric whose value is not a finite number is left out (JSON has no NaN/inf), as is
    ModelError when the chosen plan's estimate is not positive."""
    if plan not in PLANS:
        raise ValueError(f"plan must be one of {PLANS}, not {plan!r}")
    metrics = [("OffloadChunks", "Count", chunks),
               ("EstDnMs", "Milliseconds", est_dn_ms),
               ("EstLambdaMs", "Milliseconds", est_lambda_ms)]
    if ms is not None:
        metrics.append(("MeasuredMs", "Milliseconds", ms))
        estimate = est_lambda_ms if plan == "lambda" else est_dn_ms
        if isinstance(estimate, (int, float)) and estimate > 0:
            metrics.append(("ModelError", "None", ms / estimate))
    metrics += [("Invocations", "Count", invocations),
                ("Fallbacks", "Count", fallbacks),
                ("CostUsd", "None", cost_usd),
                ("Explored", "Count", int(bool(explored)))]
    kept = [(name, unit, _number(value)) for name, unit, value in metrics]
    kept = [(name, unit, value) for name, unit, value in kept if value is not None]
    stamp = time.time() if now is None else now
    record = {
        "_aws": {"Timestamp": int(stamp * 1000), "CloudWatchMetrics": [{
            "Namespace": NAMESPACE, "Dimensions": DIMENSIONS,
            "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in kept]}]},
        "FunctionName": str(function), "Plan": plan,
        "event": "offload", "kind": str(kind), "dataset": str(dataset),
    }
    record.update((name, value) for name, _, value in kept)
    return record


def _number(value):
    """value as an int or float when it is a finite number, else None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def emit(logger: logging.Logger, record: dict):
    """Write record through logger at INFO as one line holding only its JSON (compact,
    ASCII, so no newline inside). It reaches CloudWatch as EMF only when the handler's
    format is the bare message: see install()."""
    logger.info("%s", json.dumps(record, separators=(",", ":"), allow_nan=False))


def install(stream=None) -> logging.Logger:
    """The EMF_LOGGER logger, given (once) a handler of its own on stream (default:
    stderr, where the SN's log goes) that writes the message alone, and kept from the
    root logger's prefixed format (propagate off)."""
    logger = logging.getLogger(EMF_LOGGER)
    if not any(getattr(h, "_h5cloud_emf", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._h5cloud_emf = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
