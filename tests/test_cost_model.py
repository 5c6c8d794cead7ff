"""The offload cost model (LAMBDA.md Part B): both estimates and the batch size, as
plain arithmetic over the settings' constants."""
import math

from server.config import Settings
from server.offload.serverless import plan

S = Settings()          # the defaults: t_dn 40, p_dn 16, t_invoke 30, t_s3 50, p_fn 16
MB = 1024 * 1024


def test_the_estimates_follow_the_formulas():
    m = plan(1000, 4, 256 * 1024, S)
    assert m["per_call"] == 16                      # one round of the function's threads
    assert m["est_dn_ms"] == math.ceil(1000 / 64) * 40
    transfer = 1000 * 256 * 1024 * 4 / 3 / 1e6      # ms at 1000 MB/s
    assert math.isclose(m["est_lambda_ms"], 30 + 50 + transfer)


def test_big_reads_offload_and_small_ones_do_not():
    big, small = plan(1000, 4, 256 * 1024, S), plan(16, 4, 256 * 1024, S)
    assert big["est_lambda_ms"] < big["est_dn_ms"]
    assert small["est_lambda_ms"] > small["est_dn_ms"]
    # more DNs make the DN plan cheaper, never the Lambda plan
    assert plan(1000, 16, MB, S)["est_dn_ms"] < plan(1000, 4, MB, S)["est_dn_ms"]
    assert plan(1000, 16, MB, S)["est_lambda_ms"] == plan(1000, 4, MB, S)["est_lambda_ms"]


def test_batches_fit_one_answer_and_grow_when_invocations_run_out():
    assert plan(1000, 4, 2 * MB, S)["per_call"] == 2          # 4 MB of results per answer
    assert plan(1000, 4, 8 * MB, S)["per_call"] == 1          # a chunk bigger than that
    few = S.replace(aws_lambda_max_invoke=8)
    m = plan(400, 4, 2048, few)
    assert m["per_call"] == 50                               # 8 calls of 50 chunks
    assert math.isclose(m["est_lambda_ms"], 30 + math.ceil(50 / 16) * 50 + 400 * 2048 * 4 / 3 / 1e6)
    # when even full batches need more calls than may run at once, they run in waves
    tiny = S.replace(aws_lambda_max_invoke=2)
    m = plan(1000, 4, 2 * MB, tiny)
    waves = math.ceil(math.ceil(1000 / 2) / 2)
    assert m["per_call"] == 2 and m["est_lambda_ms"] > waves * (30 + 50)
