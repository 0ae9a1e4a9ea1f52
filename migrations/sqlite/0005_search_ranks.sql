-- Search ranks (`collab.store.catalog.SearchRank`) are column-filtered matches of the
-- full-text table, read in rowid order; a term must match there exactly when it begins a
-- word of the column, as on the other backends. The words are already case-folded
-- (`search_words`); the tokenizer's default folding of diacritics would make "cafe" find
-- "café" here alone. The table is rebuilt without it, from its own stored columns.
CREATE VIRTUAL TABLE notes_search_words USING fts5 (
    title, tags, body, tokenize = 'unicode61 remove_diacritics 0'
);
INSERT INTO notes_search_words (rowid, title, tags, body)
    SELECT rowid, title, tags, body FROM notes_search;
DROP TABLE notes_search;
ALTER TABLE notes_search_words RENAME TO notes_search;
