-- Object storage: a session's multipart upload, as JSON ({"upload_id", "part_size", "parts"}:
-- the committed parts' ids, in order); NULL for a session written to a file. For an object,
-- `destination` is its key and `temp_path` is empty.
ALTER TABLE sessions ADD COLUMN multipart TEXT;
-- Expiry: a node sweeps the sessions nobody touched, those of other nodes too.
CREATE INDEX sessions_by_touch ON sessions (touched_at);
