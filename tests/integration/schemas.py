"""Validation of the worker's records against the JSON Schemas in schemas/.

A helper module, not a test. The end-to-end tests call it on every record
they read, so that what the worker publishes is what the schemas promise:

    from schemas import validate, validate_record, dlq_envelope

    validate("event", {"type": "campaign.sent", "campaign_id": 7})
    validate("report", record.json())           # a report topic record
    validate("dlq", dlq_envelope(record))       # a DLQ topic record
    validate_record("report", record)           # the same, headers included

validate() raises SchemaMismatch (a ValueError) naming the schema file, the
path inside the object and every error found. Uses Debian's
python3-jsonschema (4.10) and the standard library; format "date-time" is
checked by this module (RFC 3339), so no optional format package is needed.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO_ROOT / "schemas"

# kind -> schema file
SCHEMA_FILES = {
    "event": "input-event.schema.json",
    "report": "report.schema.json",
    "dlq": "dlq-record.schema.json",
}

# Headers of a DLQ record that the envelope must carry (SPEC §4).
DLQ_HEADERS = ("error.reason", "error.message", "source.topic",
               "source.partition", "source.offset")


class SchemaMismatch(ValueError):
    """An object does not match its schema. .errors holds one line per
    error ("path: message")."""

    def __init__(self, kind: str, errors: list[str]) -> None:
        self.kind = kind
        self.errors = errors
        shown = "\n  ".join(errors[:10])
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        super().__init__(
            f"{kind} does not match schemas/{SCHEMA_FILES.get(kind, '?')} "
            f"({len(errors)} error{'s' if len(errors) != 1 else ''}):\n  {shown}{more}")


def _jsonschema():
    try:
        import jsonschema
    except ImportError as e:  # pragma: no cover
        raise RuntimeError(
            "jsonschema missing: run the tests with /usr/bin/python3 and "
            "Debian's python3-jsonschema (scripts/install-deps.sh)") from e
    return jsonschema


# RFC 3339 date-time (section 5.6): full-date "T" full-time, with a zone.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"([Zz]|[+-](\d{2}):(\d{2}))")


def is_rfc3339(s: str) -> bool:
    """True for an RFC 3339 date-time with a valid calendar date and time
    (a leap second :60 is accepted, as the RFC allows)."""
    m = _RFC3339.fullmatch(s)
    if not m:
        return False
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    try:
        _dt.date(y, mo, d)
    except ValueError:
        return False
    if h > 23 or mi > 59 or sec > 60:
        return False
    if m.group(9) is not None and (int(m.group(9)) > 23 or int(m.group(10)) > 59):
        return False
    return True


def format_checker():
    """A FormatChecker that asserts "date-time" (RFC 3339) and nothing else."""
    js = _jsonschema()
    checker = js.FormatChecker(formats=())

    @checker.checks("date-time")
    def _date_time(instance) -> bool:
        if not isinstance(instance, str):
            return True  # format applies to strings only
        return is_rfc3339(instance)

    return checker


_schemas: dict = {}
_validators: dict = {}


def load_schema(kind: str) -> dict:
    """The parsed schema of kind ("event", "report" or "dlq")."""
    if kind not in SCHEMA_FILES:
        raise KeyError(f"unknown schema kind {kind!r}; one of {sorted(SCHEMA_FILES)}")
    if kind not in _schemas:
        path = SCHEMA_DIR / SCHEMA_FILES[kind]
        with open(path, encoding="utf-8") as f:
            _schemas[kind] = json.load(f)
    return _schemas[kind]


def validator(kind: str):
    """A Draft 2020-12 validator of kind, with date-time checked (cached)."""
    if kind not in _validators:
        js = _jsonschema()
        schema = load_schema(kind)
        js.Draft202012Validator.check_schema(schema)
        _validators[kind] = js.Draft202012Validator(schema, format_checker=format_checker())
    return _validators[kind]


def _path(err) -> str:
    parts = []
    for p in err.absolute_path:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(p)):
            parts.append(f".{p}")
        else:
            parts.append(f"[{json.dumps(str(p))}]")
    return "$" + "".join(parts)


def _flatten(err) -> list:
    """The leaf errors of an error tree (anyOf/oneOf/if-then keep the real
    reasons in their context), so that messages point at the field."""
    if not err.context:
        return [err]
    out = []
    for sub in err.context:
        out.extend(_flatten(sub))
    return out


def errors(kind: str, obj: Any) -> list[str]:
    """Every mismatch of obj against kind's schema, one line each
    ("$.path: message"); [] when it matches."""
    v = validator(kind)
    lines = []
    for err in sorted(v.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        line = f"{_path(err)}: {err.message}"
        if err.context:
            leaves = sorted({f"{_path(e)}: {e.message}" for e in _flatten(err)})
            line += " [" + "; ".join(leaves[:4]) + ("; ..." if len(leaves) > 4 else "") + "]"
        lines.append(line)
    return lines


def validate(kind: str, obj: Any) -> None:
    """Raises SchemaMismatch when obj does not match kind's schema
    ("event", "report" or "dlq")."""
    errs = errors(kind, obj)
    if errs:
        raise SchemaMismatch(kind, errs)


def _b64(data: Optional[bytes]) -> Optional[str]:
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode("ascii")


def dlq_envelope(record) -> dict:
    """The DLQ envelope (schemas/dlq-record.schema.json) of a consumed DLQ
    record (harness.Record, or anything with topic, partition, offset, key,
    value, headers [(name, bytes)] and optionally timestamp).

    Key and value become base64 (null when absent); headers a dict of UTF-8
    strings, the last value of a repeated name winning, as Record.header()
    reads them. Raises ValueError when a header value is not UTF-8 or a
    header name repeats, since the worker writes each header once, as text."""
    headers: dict = {}
    for name, value in record.headers or []:
        if name in headers:
            raise ValueError(f"DLQ record {record.topic}[{record.partition}]@{record.offset}: "
                             f"header {name!r} appears more than once")
        if value is None:
            raise ValueError(f"DLQ record {record.topic}[{record.partition}]@{record.offset}: "
                             f"header {name!r} has no value")
        try:
            headers[name] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError as e:
            raise ValueError(f"DLQ record {record.topic}[{record.partition}]@{record.offset}: "
                             f"header {name!r} is not UTF-8: {e}") from e
    env = {
        "key": _b64(record.key),
        "value": _b64(record.value),
        "headers": headers,
        "topic": record.topic,
        "partition": int(record.partition),
        "offset": int(record.offset),
    }
    ts = getattr(record, "timestamp", None)
    if isinstance(ts, int) and ts > 0:
        env["timestamp"] = ts
    return env


# CloudEvents 1.0, Kafka protocol binding, binary content mode
# (output.cloudevents=binary): the types the worker writes per topic kind.
CE_TYPES = {
    "report": {"world.bsg.campaign.report", "world.bsg.campaign.progress"},
    "dlq": {"world.bsg.campaign.event.dead_lettered"},
}
# RFC 3986 URI-reference, as far as a header can be checked without a URI
# library: printable ASCII without the characters a URI never holds.
_URI_REF = re.compile(r'^[!#-;=?-\[\]_a-z~]+$')


def ce_attributes(record) -> dict:
    """The CloudEvents attributes of a binary-mode record: ce_<name> headers
    as UTF-8 strings, the prefix stripped ({} when it has none)."""
    out = {}
    for name, value in record.headers or []:
        if name.startswith("ce_"):
            out[name[3:]] = value.decode("utf-8") if isinstance(value, bytes) else value
    return out


def validate_ce(kind: str, record) -> dict:
    """Checks a record's ce_* headers against the CloudEvents 1.0 spec's
    required attributes (specversion "1.0"; id and source non-empty strings,
    source a URI-reference; type non-empty) and the optional ones the worker
    writes (time RFC 3339; subject the campaign id), and the types the
    worker documents. Returns the attributes; raises ValueError."""
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    names = [n for n, _ in record.headers or [] if n.startswith("ce_")]
    if len(names) != len(set(names)):
        raise ValueError(f"{kind} {where}: a ce_ header repeats: {names}")
    ce = ce_attributes(record)
    if ce.get("specversion") != "1.0":
        raise ValueError(f"{kind} {where}: ce_specversion {ce.get('specversion')!r}, want '1.0'")
    for req in ("id", "source", "type"):
        if not ce.get(req):
            raise ValueError(f"{kind} {where}: required attribute ce_{req} missing or empty")
    if not _URI_REF.match(ce["source"]):
        raise ValueError(f"{kind} {where}: ce_source {ce['source']!r} is not a URI-reference")
    if ce["type"] not in CE_TYPES[kind]:
        raise ValueError(f"{kind} {where}: ce_type {ce['type']!r} not one of {sorted(CE_TYPES[kind])}")
    if "time" not in ce or not is_rfc3339(ce["time"]):
        raise ValueError(f"{kind} {where}: ce_time {ce.get('time')!r} is not RFC 3339")
    if "subject" in ce and not re.fullmatch(r"[1-9][0-9]*", ce["subject"]):
        raise ValueError(f"{kind} {where}: ce_subject {ce['subject']!r} is not a campaign id")
    extra = set(ce) - {"specversion", "id", "source", "type", "time", "subject"}
    if extra:
        raise ValueError(f"{kind} {where}: unexpected ce_ headers {sorted(extra)}")
    if kind == "report":
        if ce.get("subject") != (record.key or b"").decode():
            raise ValueError(f"{kind} {where}: ce_subject {ce.get('subject')!r} is not the key")
    return ce


def validate_record(kind: str, record) -> None:
    """Validates a consumed record of the report or DLQ topic, headers
    included: a report's value is JSON matching the report schema, with the
    header content-type: application/json and the key equal to its
    campaign_id in decimal; a DLQ record's envelope matches the DLQ schema.
    Raises SchemaMismatch or ValueError."""
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    if kind == "report":
        try:
            obj = json.loads(record.value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"report {where}: value is not JSON: {e}") from e
        validate("report", obj)
        ct = dict(record.headers or []).get("content-type")
        if ct != b"application/json":
            raise ValueError(f"report {where}: content-type header {ct!r}, want b'application/json'")
        if record.key != str(obj["campaign_id"]).encode():
            raise ValueError(f"report {where}: key {record.key!r} is not the campaign id {obj['campaign_id']}")
        if record.header("ce_specversion") is not None:
            validate_ce("report", record)
    elif kind == "dlq":
        validate("dlq", dlq_envelope(record))
        if record.header("ce_specversion") is not None:
            validate_ce("dlq", record)
    elif kind == "event":
        try:
            obj = json.loads(record.value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"event {where}: value is not JSON: {e}") from e
        validate("event", obj)
    else:
        raise KeyError(f"unknown schema kind {kind!r}")
