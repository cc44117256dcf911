-- Sessions closed lately: see ../0002_closed.sql.
CREATE TABLE closed (
    id TEXT PRIMARY KEY NOT NULL,
    url_path TEXT NOT NULL,
    user_name TEXT,
    closed_at BIGINT NOT NULL
);
CREATE INDEX closed_by_time ON closed (closed_at);
