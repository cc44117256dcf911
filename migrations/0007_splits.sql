-- A file fetched over several connections at once (a foreground job's `connections`): each
-- connection's part of the file and how far it is, as JSON ([{start, next, end}]), so that after
-- a crash each part goes on from its own durable offset. NULL for a file fetched over one
-- connection.
ALTER TABLE files ADD COLUMN splits TEXT;
