"""A local AWS Lambda Invoke endpoint (LAMBDA.md Part D), for development and tests —
there is no AWS and no Docker engine here.

    python awslambda/local_invoke.py [--port 9001] [--runtime PY] NAME=ZIP [NAME=ZIP ...]

Each function's built zip is unpacked into a temporary folder and run by worker
processes of the runtime's interpreter (python3.12 for our functions, so wheels built
for another Python fail here first). A worker imports the handler on its first call
(a cold start) and stays warm; it runs one invocation at a time. Answers follow the
Invoke API: 200 with the handler's result; 200 + X-Amz-Function-Error for a function
error (exception or timeout); 404 ResourceNotFoundException; 429
TooManyRequestsException when every worker is busy.
"""
import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path

from aiohttp import web

HANDLERS = {"chunk_read": "chunk_read_lambda.lambda_function.lambda_handler",
            "hslambda": "server.lambda_app.lambda_handler"}

# runs inside each worker: one JSON request per line in, one answer per line out: "R" and
# the result's JSON (relayed as it is: megabytes of chunk_read answers are not parsed
# again), or "E" and the error's
WORKER = r'''
import importlib, json, os, sys, time, traceback
sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
module_name, _, func_name = os.environ["_HANDLER"].rpartition(".")
handler = None
class Context:
    def __init__(self, c):
        self.__dict__.update(c)
        self._deadline = time.time() + c["timeout"]
    def get_remaining_time_in_millis(self):
        return int(max(0, self._deadline - time.time()) * 1000)
out = sys.stdout
sys.stdout = sys.stderr          # the handler's prints are its log, not the answer
for line in sys.stdin:
    request = json.loads(line)
    try:
        if handler is None:
            handler = getattr(importlib.import_module(module_name), func_name)
        line = "R" + json.dumps(handler(request["event"], Context(request["context"])))
    except Exception as e:
        line = "E" + json.dumps({"errorMessage": str(e), "errorType": type(e).__name__,
                                 "stackTrace": traceback.format_exc().splitlines()})
    out.write(line + "\n")
    out.flush()
'''


class Worker:
    def __init__(self, fn):
        self.fn = fn
        self.proc = None

    async def start(self):
        self.proc = await asyncio.create_subprocess_exec(
            self.fn.runtime, "-c", WORKER, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=self.fn.env, limit=64 * 1024 * 1024)

    async def invoke(self, event, context) -> tuple:
        """(result JSON bytes, None) or (None, error dict)."""
        if self.proc is None or self.proc.returncode is not None:
            await self.start()
        self.proc.stdin.write((json.dumps({"event": event, "context": context}) + "\n")
                              .encode())
        await self.proc.stdin.drain()
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), self.fn.timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            return None, {"errorMessage": f"Task timed out after {self.fn.timeout:.2f} seconds",
                          "errorType": "TimeoutError", "stackTrace": []}
        if not line:
            code = await self.proc.wait()
            return None, {"errorMessage": f"Runtime exited with status {code}",
                          "errorType": "Runtime.ExitError", "stackTrace": []}
        if line[:1] == b"R":    # relayed without a copy: answers run to megabytes
            return memoryview(line)[1:len(line) - line.endswith(b"\n")], None
        return None, json.loads(line[1:])

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


class Function:
    def __init__(self, name, zip_path, runtime, concurrency, timeout, memory=128):
        self.name, self.runtime, self.timeout, self.memory = name, runtime, timeout, memory
        self.root = Path(tempfile.mkdtemp(prefix=f"lambda-{name}-"))
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(self.root)
        handler = HANDLERS.get(name, f"{name}.lambda_function.lambda_handler")
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.env = {**os.environ, "LAMBDA_TASK_ROOT": str(self.root), "_HANDLER": handler,
                    "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory), "AWS_REGION": region,
                    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12", "PYTHONPATH": ""}
        self.idle = [Worker(self) for _ in range(concurrency)]
        self.all = list(self.idle)

    def context(self, request_id) -> dict:
        return {"function_name": self.name, "function_version": "$LATEST",
                "memory_limit_in_mb": self.memory, "aws_request_id": request_id,
                "invoked_function_arn":
                    f"arn:aws:lambda:{self.env['AWS_REGION']}:000000000000:function:{self.name}",
                "log_group_name": f"/aws/lambda/{self.name}", "timeout": self.timeout}

    async def close(self):
        for worker in self.all:
            await worker.stop()
        shutil.rmtree(self.root, ignore_errors=True)


FUNCTIONS = web.AppKey("functions", dict)


def service_error(status, kind, message, **extra):
    return web.json_response({"Type": "User", "message": message, **extra}, status=status,
                             headers={"x-amzn-ErrorType": kind})


async def invoke(request):
    name = request.match_info["name"].split(":function:")[-1].split(":")[0]
    fn = request.app[FUNCTIONS].get(name)
    if fn is None:
        return service_error(404, "ResourceNotFoundException", f"Function not found: {name}")
    body = await request.read()
    if len(body) > 6 * 1024 * 1024:
        return service_error(413, "RequestTooLargeException", "Request must be smaller")
    kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
    if kind == "DryRun":
        return web.Response(status=204)
    if not fn.idle:
        return service_error(429, "TooManyRequestsException", "Rate Exceeded.",
                             Reason="ConcurrentInvocationLimitExceeded", retryAfterSeconds=1)
    event = json.loads(body) if body else {}
    worker = fn.idle.pop()
    request_id = str(uuid.uuid4())

    async def run():
        try:
            return await worker.invoke(event, fn.context(request_id))
        finally:
            fn.idle.append(worker)

    if kind == "Event":
        asyncio.ensure_future(run())
        return web.Response(status=202)
    result, error = await run()
    headers = {"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": request_id}
    if error is not None:
        headers["X-Amz-Function-Error"] = "Unhandled"
        return web.json_response(error, headers=headers)
    return web.Response(body=result, headers=headers, content_type="application/json")


def make_app(functions: dict) -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[FUNCTIONS] = functions
    app.router.add_post("/2015-03-31/functions/{name}/invocations", invoke)

    async def cleanup(app):
        for fn in functions.values():
            await fn.close()

    app.on_cleanup.append(cleanup)
    return app


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=9001)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--runtime", default=os.environ.get("LAMBDA_RUNTIME_PYTHON", sys.executable))
    p.add_argument("--concurrency", type=int, default=4, help="workers per function")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per invocation")
    p.add_argument("functions", nargs="+", metavar="NAME=ZIP")
    args = p.parse_args(argv)
    functions = {}
    for spec in args.functions:
        name, _, path = spec.partition("=")
        functions[name] = Function(name, path, args.runtime, args.concurrency, args.timeout)
    print(f"Lambda Invoke endpoint on http://127.0.0.1:{args.port} "
          f"({', '.join(functions)}; runtime {args.runtime})", flush=True)
    web.run_app(make_app(functions), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
