-- SQLite's full-text table now keeps the words `search_words` made, as they are. Postgres
-- already does (`array_to_tsvector`): nothing changes here. The file keeps both dialects'
-- versions in step.
SELECT 1;
