-- Upload sessions of ebb-server on PostgreSQL, shared by every node of a farm: one row per open
-- session. The columns mean what those of the SQLite schema (../0001_sessions.sql) mean.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    url_path TEXT NOT NULL,
    user_name TEXT,
    destination TEXT NOT NULL,
    temp_path TEXT NOT NULL,
    total BIGINT,
    -- Bytes 0..received are durable; it moves only by compare-and-set.
    received BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    touched_at BIGINT NOT NULL,
    reply_url TEXT,
    keep BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX sessions_by_user ON sessions (user_name);
