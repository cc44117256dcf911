-- Upload sessions of ebb-server: one row per open session of the BITS upload protocol.
CREATE TABLE sessions (
    -- The id the client was given: a braced, upper-case GUID.
    id TEXT PRIMARY KEY NOT NULL,
    -- The URL path the session was created for; packets for another path do not reach it.
    url_path TEXT NOT NULL,
    -- The user who created it, when the directory asks for credentials.
    user_name TEXT,
    -- Where the file goes at Close-Session, and the hidden file that receives it until then.
    destination TEXT NOT NULL,
    temp_path TEXT NOT NULL,
    -- The file's length, known from the first fragment.
    total INTEGER,
    -- Bytes 0..received are in the temporary file and durable.
    received INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    -- Unix milliseconds of the last packet; the session expires a timeout after it.
    touched_at INTEGER NOT NULL,
    -- Upload-reply: the BITS-Reply-URL given once the server application answered, and whether
    -- it asked to keep the upload at its name as well.
    reply_url TEXT,
    keep INTEGER NOT NULL DEFAULT 0
) STRICT;
