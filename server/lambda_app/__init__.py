"""The whole h5cloud server as one AWS Lambda function (LAMBDA.md Part C).

Handler string: `server.lambda_app.lambda_handler`.
"""


def lambda_handler(event, context):
    # imported on the first call, so importing the package itself costs nothing
    from .handler import lambda_handler as handle
    return handle(event, context)
