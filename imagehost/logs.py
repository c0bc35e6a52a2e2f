"""Logging through loguru: stdlib and aiohttp loggers routed in, secrets scrubbed,
plain text or one JSON object per line (`LOG_JSON=true`)."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

if TYPE_CHECKING:
    from loguru import Message, Record

# Anything that looks like a credential is replaced before a line is written.
_SECRETS = [
    (re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"), r"\1[redacted]"),
    (re.compile(r"ih_[A-Za-z0-9_-]{8,}"), "ih_[redacted]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),
    (
        re.compile(
            r"(?i)((?:sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|token|password|secret|key)=)[^&\s\"']+"
        ),
        r"\1[redacted]",
    ),
    (
        re.compile(
            r"(?i)(\"?(?:password|secret|token|api_key|access_token|cookie|authorization)\"?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,}]+)"
        ),
        r"\1[redacted]",
    ),
    (re.compile(r"(?i)(imagehost_session=)[^;\s]+"), r"\1[redacted]"),
]


def scrub(text: str) -> str:
    for pattern, repl in _SECRETS:
        text = pattern.sub(repl, text)
    return text


def _patch(record: dict[str, Any]) -> None:
    record["message"] = scrub(record["message"])
    for k, v in list(record["extra"].items()):
        if isinstance(v, str):
            record["extra"][k] = scrub(v)


class InterceptHandler(logging.Handler):
    """Send standard-library log records to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = logging.currentframe(), 2
        while frame and frame.f_code.co_filename == logging.__file__:
            frame = frame.f_back  # type: ignore[assignment]
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def _json_sink(stream: TextIO) -> Callable[[Message], None]:
    def sink(message: Message) -> None:
        r = message.record
        out: dict[str, Any] = {
            "time": r["time"].isoformat(),
            "level": r["level"].name,
            "logger": r["name"],
            "message": r["message"],
        }
        out.update(r["extra"])
        if r["exception"] is not None:
            exc = r["exception"]
            out["exception"] = scrub(f"{exc.type.__name__}: {exc.value}") if exc.type else None
        stream.write(json.dumps(out, default=str) + "\n")
        stream.flush()

    return sink


def _text_format(record: Record) -> str:
    extra = " ".join(f"{k}={v}" for k, v in record["extra"].items() if k not in ("method", "path", "status"))
    line = "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> {message}"
    if extra:
        line += " <dim>" + extra.replace("{", "{{").replace("}", "}}").replace("<", r"\<") + "</dim>"
    return line + "\n{exception}"


def setup_logging(level: str = "INFO", as_json: bool = False, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    logger.remove()
    logger.configure(patcher=_patch)  # type: ignore[arg-type]
    if as_json:
        logger.add(_json_sink(stream), level=level, backtrace=False, diagnose=False)
    else:
        logger.add(
            stream,
            level=level,
            backtrace=False,
            diagnose=False,  # never print local variables: they may hold secrets
            format=_text_format,
            colorize=None,
        )
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    for name in (
        "aiohttp",
        "aiohttp.access",
        "aiohttp.server",
        "aiohttp.web",
        "asyncio",
        "yoyo",
        "sqlalchemy",
        "botocore",
        "aiobotocore",
    ):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    # PIL logs every PNG chunk it reads at DEBUG; the header read of each upload's sniff
    # paid for those records going through the handler above only for loguru to drop them.
    for noisy in ("botocore", "aiobotocore", "yoyo", "sqlalchemy", "aiosqlite", "urllib3", "asyncio", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
