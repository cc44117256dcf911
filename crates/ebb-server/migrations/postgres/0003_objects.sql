-- Object storage: a session's multipart upload; see ../0003_objects.sql.
ALTER TABLE sessions ADD COLUMN multipart TEXT;
-- Expiry: a node sweeps the sessions nobody touched, those of other nodes too.
CREATE INDEX sessions_by_touch ON sessions (touched_at);
