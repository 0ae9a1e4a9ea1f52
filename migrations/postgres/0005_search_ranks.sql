-- Search ranks (`collab.store.catalog.SearchRank`): the words of the title, and of the title
-- and tags, as lexemes (built as `search` is in 0004), each with a GIN index, and `seq`,
-- numbering rows in the order notes were first indexed: each rank is read newest first
-- along `notes_ranked` until a page is full (a word in every note costs a page, not a sort
-- of every match), or through the word indexes when few notes match.
ALTER TABLE notes
    ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN title_words TSVECTOR GENERATED ALWAYS AS (
        array_to_tsvector(array_remove(string_to_array(regexp_replace(
            search_title, '(\S{64})\S+', '\1', 'g'
        ), ' '), ''))
    ) STORED,
    ADD COLUMN heading_words TSVECTOR GENERATED ALWAYS AS (
        array_to_tsvector(array_remove(string_to_array(regexp_replace(
            search_title || ' ' || search_tags, '(\S{64})\S+', '\1', 'g'
        ), ' '), ''))
    ) STORED;

CREATE INDEX notes_ranked ON notes (workspace_id, trashed, seq);

-- A GIN index queues new entries in a pending list that every search reads through until
-- it is merged (by a vacuum, or by the write that fills it past gin_pending_list_limit,
-- 4 MB by default). Every re-index of a note writes a new row version, and so new entries:
-- at 100,000 notes a search for a word no title holds read 236 pages of pending entries
-- (7 ms) in notes_title_words alone. The title and heading words are a few per note,
-- written at once; the body's (notes_search) keep a short queue.
CREATE INDEX notes_title_words ON notes USING gin (title_words) WITH (fastupdate = off);
CREATE INDEX notes_heading_words ON notes USING gin (heading_words) WITH (fastupdate = off);
ALTER INDEX notes_search SET (gin_pending_list_limit = 256);
