-- Sessions closed lately, so that a Close-Session sent again (its Ack was lost), to this node
-- or, on a shared database, to another, is answered as done. Kept a day.
CREATE TABLE closed (
    id TEXT PRIMARY KEY NOT NULL,
    url_path TEXT NOT NULL,
    user_name TEXT,
    closed_at INTEGER NOT NULL
) STRICT;
