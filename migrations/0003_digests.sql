-- End-to-end integrity: the SHA-256 an app expects of a file, the one the server claims, the one
-- the transferred bytes were verified against, and the running hash state saved with each
-- checkpoint (so that a resumed file is not read again). Digests are 64 hex digits.
ALTER TABLE files ADD COLUMN expected_sha256 TEXT;
ALTER TABLE files ADD COLUMN server_sha256 TEXT;
ALTER TABLE files ADD COLUMN verified_sha256 TEXT;
ALTER TABLE files ADD COLUMN hash_state BLOB;
