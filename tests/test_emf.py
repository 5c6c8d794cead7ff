"""server/offload/emf.py: the SN's offload-decision records follow the Embedded Metric
Format rules that can be checked without AWS, leave out what was not measured, and go out
as one line of bare JSON."""
import io
import json
import logging
import math
import types

import pytest

from server.offload import emf

UNITS = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
         "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
         "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
         "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
         "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"}


def check_emf(record: dict):
    """Raise AssertionError where record breaks the EMF specification's rules."""
    meta = record["_aws"]
    assert isinstance(meta["Timestamp"], int) and not isinstance(meta["Timestamp"], bool)
    assert meta["Timestamp"] > 10**12                     # milliseconds, not seconds
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for d in directives:
        assert isinstance(d["Namespace"], str) and 1 <= len(d["Namespace"]) <= 255
        assert isinstance(d["Dimensions"], list)
        for dset in d["Dimensions"]:
            assert isinstance(dset, list) and 1 <= len(dset) <= 30
            for key in dset:
                assert isinstance(record.get(key), str) and record[key], key
        assert 1 <= len(d["Metrics"]) <= 100
        names = [m["Name"] for m in d["Metrics"]]
        assert len(names) == len(set(names))
        for m in d["Metrics"]:
            assert set(m) <= {"Name", "Unit", "StorageResolution"}
            assert isinstance(m["Name"], str) and 1 <= len(m["Name"]) <= 255
            assert m.get("Unit", "None") in UNITS
            value = record[m["Name"]]
            assert isinstance(value, (int, float)) and not isinstance(value, bool), m
            assert math.isfinite(value)
    json.loads(json.dumps(record, allow_nan=False))        # plain JSON, no NaN


def sample(**changes) -> dict:
    args = dict(plan="lambda", kind="read", dataset="d-1234", chunks=400, est_dn_ms=1000.0,
                est_lambda_ms=250.0, ms=300.0, invocations=25, fallbacks=1,
                cost_usd=6.2e-6, explored=False, function="chunk_read",
                now=1_700_000_000.5)
    args.update(changes)
    return emf.decision_record(**args)


def metric_names(record) -> list:
    return [m["Name"] for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]]


def test_record_follows_emf():
    record = sample()
    check_emf(record)
    d = record["_aws"]["CloudWatchMetrics"][0]
    assert d["Namespace"] == "h5cloud"
    assert d["Dimensions"] == [["FunctionName", "Plan"]]
    assert record["_aws"]["Timestamp"] == 1_700_000_000_500
    assert record["FunctionName"] == "chunk_read" and record["Plan"] == "lambda"
    assert record["dataset"] == "d-1234" and record["kind"] == "read"
    units = {m["Name"]: m["Unit"] for m in d["Metrics"]}
    assert units == {"OffloadChunks": "Count", "EstDnMs": "Milliseconds",
                     "EstLambdaMs": "Milliseconds", "MeasuredMs": "Milliseconds",
                     "ModelError": "None", "Invocations": "Count", "Fallbacks": "Count",
                     "CostUsd": "None", "Explored": "Count"}
    assert record["OffloadChunks"] == 400 and record["Invocations"] == 25
    assert record["Fallbacks"] == 1 and record["Explored"] == 0
    assert record["CostUsd"] == pytest.approx(6.2e-6)     # not rounded away
    assert record["MeasuredMs"] == 300.0
    assert record["ModelError"] == pytest.approx(300.0 / 250.0)   # the lambda estimate


def test_dn_plan_model_error_uses_dn_estimate():
    record = sample(plan="dn", ms=500.0, invocations=0, fallbacks=0, cost_usd=0.0,
                    explored=True)
    check_emf(record)
    assert record["Plan"] == "dn" and record["Explored"] == 1
    assert record["ModelError"] == pytest.approx(0.5)       # 500 / est_dn_ms 1000


def test_unmeasured_leaves_out_measured_and_error():
    record = sample(ms=None)
    check_emf(record)
    assert "MeasuredMs" not in record and "ModelError" not in record
    assert "MeasuredMs" not in metric_names(record)
    assert "ModelError" not in metric_names(record)
    assert "EstDnMs" in metric_names(record)


def test_no_model_error_without_estimate_and_no_nan():
    record = sample(est_lambda_ms=0.0, est_dn_ms=float("nan"))
    check_emf(record)
    assert "ModelError" not in record                      # estimate 0: no ratio
    assert "EstDnMs" not in record and "EstDnMs" not in metric_names(record)
    assert record["EstLambdaMs"] == 0.0


def test_bad_plan():
    with pytest.raises(ValueError):
        sample(plan="Lambda")


def test_clock_default():
    import time
    before = int(time.time() * 1000)
    record = sample(now=None)
    assert before <= record["_aws"]["Timestamp"] <= int(time.time() * 1000) + 1


def test_checker_catches_breaks():
    """The rules above do reject broken records."""
    good = sample()
    for broken in ({**good, "OffloadChunks": "400"},
                   {**good, "FunctionName": 7},
                   {**good, "_aws": {**good["_aws"], "Timestamp": 1_700_000_000.5}}):
        with pytest.raises(AssertionError):
            check_emf(broken)
    missing = dict(good)
    del missing["Invocations"]
    with pytest.raises((AssertionError, KeyError)):
        check_emf(missing)


def test_emit_one_json_line(caplog):
    record = sample(dataset="d-with\nnewline\"quote")
    logger = logging.getLogger(emf.EMF_LOGGER)
    with caplog.at_level(logging.INFO, logger=emf.EMF_LOGGER):
        emf.emit(logger, record)
    assert len(caplog.records) == 1
    rec = caplog.records[0]
    assert rec.levelno == logging.INFO and rec.name == "h5cloud.emf"
    text = rec.getMessage()
    assert "\n" not in text
    assert json.loads(text) == record


def test_install_writes_bare_json(monkeypatch):
    logger = logging.getLogger(emf.EMF_LOGGER)
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    root_stream = io.StringIO()
    root = logging.StreamHandler(root_stream)
    root.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(root)
    try:
        stream = io.StringIO()
        assert emf.install(stream) is logger
        emf.install(stream)                                 # once only
        assert len(logger.handlers) == 1
        emf.emit(logger, sample())
        emf.emit(logger, sample(ms=None, plan="dn"))
    finally:
        logging.getLogger().removeHandler(root)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    for line in lines:
        check_emf(json.loads(line))                         # each line parses on its own
    assert json.loads(lines[1])["Plan"] == "dn"
    assert root_stream.getvalue() == ""                     # not through the prefixed root


@pytest.mark.parametrize("value, on", [(None, False), (False, False), (True, True),
                                       ("true", True), ("0", False), ("off", False)])
def test_enabled(value, on):
    settings = types.SimpleNamespace() if value is None else \
        types.SimpleNamespace(cloudwatch_emf=value)
    assert emf.enabled(settings) is on
