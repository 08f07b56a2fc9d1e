"""`python -m hudhud.worker.sandbox`: serve the provider sandbox with start-time knobs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from hudhud.worker.sandbox.app import run
from hudhud.worker.sandbox.knobs import KnobError, check_patch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hudhud.worker.sandbox", description="Serve the Taqnyat and Taifa Mail sandbox."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--latency-ms", type=float, help="delay added to every provider request")
    parser.add_argument("--error-rate", type=float, help="share of requests answered 503/502")
    parser.add_argument("--timeout-rate", type=float, help="share of requests that hang, then 504")
    parser.add_argument("--rate-429", type=float, help="share of requests answered 429")
    parser.add_argument("--balance", help="start balance of the Taqnyat account (SAR)")
    parser.add_argument("--knobs", help='JSON object of further knobs, e.g. \'{"plan": "pro"}\'')
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser.parse_args(argv)


def start_knobs(args: argparse.Namespace, parser_error: Any) -> dict[str, Any]:
    knobs: dict[str, Any] = {}
    if args.knobs:
        try:
            knobs = json.loads(args.knobs)
        except ValueError as error:
            parser_error(f"--knobs is not JSON: {error}")
        if not isinstance(knobs, dict):
            parser_error("--knobs must be a JSON object")
    flags = {
        "latency_ms": args.latency_ms,
        "error_rate_5xx": args.error_rate,
        "timeout_rate": args.timeout_rate,
        "rate_429": args.rate_429,
        "balance": args.balance,
    }
    knobs.update({name: value for name, value in flags.items() if value is not None})
    try:
        check_patch(knobs)
    except KnobError as error:
        parser_error(error.message)
    return knobs


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    def fail(message: str) -> None:
        raise SystemExit(f"python -m hudhud.worker.sandbox: error: {message}")

    run(args.host, args.port, start_knobs(args, fail), access_log=args.access_log)


if __name__ == "__main__":
    main()
