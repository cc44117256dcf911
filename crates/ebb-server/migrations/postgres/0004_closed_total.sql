-- A closed session's length: see ../0004_closed_total.sql.
ALTER TABLE closed ADD COLUMN total BIGINT;
