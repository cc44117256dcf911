-- Engine-wide settings changed at run time (e.g. `ebb bandwidth set`), as JSON by key. They
-- override the configuration file until reset.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;
