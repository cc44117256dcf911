-- Listing in pages, and finding by name, in a queue of any size: jobs in (creation time, id)
-- order, a page after a cursor, read through an index instead of a sort of the whole table.
CREATE INDEX jobs_by_creation ON jobs (created_at, id);
-- Finding a job by its display name (`ebb info NAME`) without reading every row.
CREATE INDEX jobs_by_name ON jobs (display_name);
