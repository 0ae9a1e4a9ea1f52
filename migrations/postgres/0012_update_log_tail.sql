-- SQLite's update log gained a tail that its room index takes in batches (see
-- sqlite/0012_update_log_tail.sql): SQLite copies every page a commit dirties into its WAL.
-- Postgres logs an index insert as a small WAL record instead (a page is copied whole only
-- on its first change after a checkpoint), so its log needs no change; this version keeps
-- the two dialects' migrations numbered alike.
SELECT 1;
