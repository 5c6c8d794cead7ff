"""The whole h5cloud server as one AWS Lambda function (LAMBDA.md Part C).

Handler string: `server.lambda_app.lambda_handler`. The server's modules load on the
first call; the cold start the handler logs counts from here, imports included.
"""
import time

LOADED_AT = time.perf_counter()


def lambda_handler(event, context):
    from .handler import lambda_handler as handle
    return handle(event, context)
