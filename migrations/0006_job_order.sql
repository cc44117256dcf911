-- Listing in pages: jobs in (creation time, id) order, a page after a cursor, read through an
-- index instead of a sort of the whole table (a queue may hold 100,000 jobs).
CREATE INDEX jobs_by_creation ON jobs (created_at, id);
