-- Object storage: a session's multipart upload; see ../0003_objects.sql.
ALTER TABLE sessions ADD COLUMN multipart TEXT;
