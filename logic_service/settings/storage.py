"""``storage:``: the logic tier's database, the prediction log's writer, spill and retention."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from logic_service.settings.strict import Strict, blank_as_unset


class SpillSettings(Strict):
    """Where the prediction log keeps rows the database could not take yet (writer/spill_file)."""

    enabled: bool = Field(
        True, description="False: beyond queue_size, or when inserts fail, counted drops."
    )
    dir: Path | None = Field(
        None,
        description="Folder of the spill files, shared by a host's workers (relative: to the "
        "working directory); default: spill/prediction-log next to a SQLite database file, "
        "else var/spill/prediction-log. Compose and Kubernetes mount a volume there.",
    )
    max_bytes: int = Field(
        1 << 30,
        gt=0,
        description="Size cap of the folder; at the cap rows are dropped, counted "
        '(tierkit_prediction_log_dropped_total{reason="spill_full"}) and logged as errors.',
    )
    segment_bytes: int = Field(8 << 20, gt=0, description="Size of one spill file.")
    probe_interval_s: float = Field(
        1.0, gt=0, description="While the database is unavailable, one insert this often."
    )

    @field_validator("dir", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return blank_as_unset(value)


class RetentionSettings(Strict):
    """How long the prediction log keeps what; pruned off the request path (storage/retention)."""

    predictions_days: float = Field(
        3.0,
        gt=0,
        description="Raw prediction rows (inputs, outputs, feedback joins) older than this are "
        "deleted; feedback for them then answers 404.",
    )
    aggregates_days: float = Field(
        90.0, gt=0, description="1-minute aggregates (evaluation, guardrails, long windows)."
    )
    fine_aggregates_hours: float = Field(
        24.0,
        gt=0,
        description="10-second aggregates (dashboard, exact window ends); windows reaching "
        "further back are read in whole minutes.",
    )
    interval_s: float = Field(300.0, gt=0, description="Pause between two retention passes.")
    batch_rows: int = Field(2000, gt=0, description="Rows deleted per transaction.")
    pause_ms: int = Field(
        20, ge=0, description="Shortest pause between two delete batches (writers get the lock)."
    )
    busy_share: float = Field(
        0.05,
        gt=0,
        le=1,
        description="Share of the pass's time spent deleting: after a batch that took t, it "
        "pauses t * (1 / busy_share - 1), so on a busy machine it yields the CPU to serving.",
    )
    nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Linux: how much lower the pass runs than serving (nice value added).",
    )
    child_process: bool = Field(
        True,
        description="Run each pass in a child process (retention_process): its Python work "
        "then never holds a serving worker's GIL; false: in a thread of the worker.",
    )
    idle_cpu: bool = Field(
        True,
        description="Linux, child process: run it under SCHED_IDLE (util-linux chrt), which "
        "any serving thread preempts at once; false, or without chrt: nice only.",
    )
    enabled: bool = Field(True, description="Run retention passes (one replica at a time).")


class StorageSettings(Strict):
    """The database of the prediction log (and rollout state) and how predictions reach it."""

    database_url: str = Field(
        "sqlite:///var/tierkit.db",
        description="SQLAlchemy URL; a relative SQLite path is relative to the working "
        "directory and created on demand; postgresql://user@host:5432/db (or postgres://) "
        "uses psycopg 3.",
    )
    database_password_file: Path | None = Field(
        None,
        description="File holding the database password (a compose or Kubernetes secret); "
        "its content without the trailing newline replaces any password in database_url.",
    )
    migrate_on_start: bool = Field(
        True,
        description="Upgrade the schema to this release's head at start, under a lock; false: "
        "refuse to start unless it is at head (run `python -m logic_service db upgrade`).",
    )
    record_predictions: bool = Field(True, description="Write every answer to the log.")
    payloads: Literal["full", "sampled", "none"] = Field(
        "full",
        description="How much of each request the log keeps: inputs and outputs of every row "
        "(full), of a share of request ids (sampled), or none; the row itself (ids, version, "
        "score, latency, status, feedback) always stays.",
    )
    payload_sample_rate: float = Field(
        0.01, ge=0, le=1, description="payloads: sampled keeps this share of requests' payloads."
    )
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    queue_size: int = Field(
        10_000, gt=0, description="Records waiting in memory; beyond, they go to the spill file."
    )
    batch_size: int = Field(500, gt=0, description="Rows per insert.")
    flush_interval_ms: int = Field(200, gt=0, description="Longest wait before an insert.")
    busy_timeout_ms: int = Field(5000, ge=0, description="SQLite: wait on another writer.")
    write_retry_s: float = Field(
        5.0, ge=0, description="Retry a failed insert this long before spilling its rows."
    )
    spill: SpillSettings = Field(default_factory=SpillSettings)
    feedback_wait_ms: int = Field(
        1000,
        ge=0,
        description="Feedback for an id not in the log yet waits this long (other workers' "
        "queues) before answering 404.",
    )

    @field_validator("database_password_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return blank_as_unset(value)
