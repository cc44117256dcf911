-- Uploads. An upload file's dealings with the server, as JSON (UploadState): the source's stamp
-- when its upload began (a change after that is an error), the server's session id, the host
-- the server pinned it to, and an upload-reply's reply URL; so that after a crash the upload goes
-- on in the session the server knows. NULL for a download file, and until an upload begins.
ALTER TABLE files ADD COLUMN upload TEXT;
-- Where an upload-reply job's reply goes: the name the app set, or the one generated when the
-- reply was first fetched. The reply itself is the job's file row at idx 1.
ALTER TABLE jobs ADD COLUMN reply_file_name TEXT;
