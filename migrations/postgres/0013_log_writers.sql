-- Compaction merges only what the live document may lack (see sqlite/0013_log_writers.sql).
--
-- `writer` names the live document (a random number drawn when an instance loads the note)
-- that held a row's update before it was appended, or that a snapshot is the exact state of.
-- A compaction by that same live document neither reads nor merges what carries its own
-- number; everything else (other instances' rows, earlier loads, rows from before this
-- migration: NULL) is merged as before. Nullable without a default: no table is rewritten.

ALTER TABLE document_updates ADD COLUMN writer BIGINT;
ALTER TABLE document_snapshots ADD COLUMN writer BIGINT;
