-- ebb's queue: jobs, their files, and the live progress a running engine publishes.
-- Applied once, in order, at open; PRAGMA user_version records the last one applied.

CREATE TABLE jobs (
    id                TEXT PRIMARY KEY NOT NULL,
    display_name      TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    job_type          TEXT NOT NULL CHECK (job_type IN ('download', 'upload', 'upload_reply')),
    state             TEXT NOT NULL CHECK (state IN ('queued', 'connecting', 'transferring',
                          'suspended', 'error', 'transient_error', 'transferred',
                          'acknowledged', 'cancelled')),
    owner_uid         INTEGER NOT NULL,
    owner_name        TEXT NOT NULL,
    -- JobProperties as JSON (priority, retry delay, timeouts, notify, headers, proxy, flags).
    properties        TEXT NOT NULL,
    server_user       TEXT,
    server_password   TEXT,
    proxy_user        TEXT,
    proxy_password    TEXT,
    created_at        INTEGER NOT NULL,   -- Unix milliseconds
    modified_at       INTEGER NOT NULL,
    completed_at      INTEGER,
    error_count       INTEGER NOT NULL DEFAULT 0,
    error             TEXT,               -- JobError as JSON
    queue_seq         INTEGER NOT NULL DEFAULT 0,
    retry_at          INTEGER,
    no_progress_since INTEGER,
    active_ms         INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE files (
    job_id            TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx               INTEGER NOT NULL,
    remote_url        TEXT NOT NULL,
    local_path        TEXT NOT NULL,
    ranges            TEXT,               -- [ByteRange] as JSON, NULL for the whole file
    temp_path         TEXT NOT NULL,
    bytes_total       INTEGER,            -- NULL while unknown
    bytes_transferred INTEGER NOT NULL DEFAULT 0,
    completed         INTEGER NOT NULL DEFAULT 0,
    etag              TEXT,
    last_modified     TEXT,
    PRIMARY KEY (job_id, idx)
) STRICT;

-- Progress past the last checkpoint, written without fsync by the engine that runs the job, so
-- that other processes can show live figures. Meaningless once that engine has stopped.
CREATE TABLE live_progress (
    job_id            TEXT NOT NULL,
    idx               INTEGER NOT NULL,
    bytes_transferred INTEGER NOT NULL,
    bytes_total       INTEGER,
    completed         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, idx)
) STRICT;
