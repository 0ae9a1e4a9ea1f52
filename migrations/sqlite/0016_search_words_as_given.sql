-- The full-text table splits only where `search_words` did. Its words are already runs of
-- letters and digits, case-folded, separated by spaces; `unicode61` classified characters
-- again by its own older tables and split words at 21 code points Python calls letters
-- (U+19B0..U+19C0, U+19C8, U+19C9, U+1CF2, U+1CF3), so a term could match in a word's
-- middle here alone. The `ascii` tokenizer splits at ASCII separators only and keeps every
-- other character in its word, as Postgres keeps the words it is given. The table is rebuilt
-- from its own stored columns.
CREATE VIRTUAL TABLE notes_search_as_given USING fts5 (
    title, tags, body, tokenize = 'ascii'
);
INSERT INTO notes_search_as_given (rowid, title, tags, body)
    SELECT rowid, title, tags, body FROM notes_search;
DROP TABLE notes_search;
ALTER TABLE notes_search_as_given RENAME TO notes_search;
