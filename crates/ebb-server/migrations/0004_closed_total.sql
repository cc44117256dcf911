-- A closed session's length: a tus client that lost the answer to its last PATCH asks for its
-- upload's offset (HEAD), and is told it is whole.
ALTER TABLE closed ADD COLUMN total INTEGER;
