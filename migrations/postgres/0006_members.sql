-- The member directory (`collab.store.members`): besides the users seen with a role in a
-- workspace, the members an owner provisioned, changed or removed. A user seen before keeps
-- their row: the name becomes the token's name, and their first sight their last.
--
-- The role a row written before this migration was seen with is unknown: 'editor' stands for
-- it. The directory only lists it and grants nothing by it (each request is checked against
-- its token's own role, capped by `assigned_role`), and the user's next sight writes theirs.
--
-- Times are text as `format_timestamp` writes them, as in the catalog (0004); `first_seen`
-- stays a TIMESTAMPTZ, written on insert and never read. Ids, name keys and times are
-- COLLATE "C": pages (by user id), prefixes and the latest sight compare in code point order,
-- as in Python, whatever the database's locale.
--
-- `name_key` is the listed name (`assigned_name`, else `token_name`) case-folded by the store
-- (`members.name_key`, `str.casefold`), '' without a name: what a prefix search compares. SQL
-- has no `str.casefold` (before PostgreSQL 18), so here it is written for ASCII names only
-- (where `lower` under "C" folds the same); the others stay NULL until the store opens and
-- fills them (`postgres_members.fill_name_keys`), before it serves anything.
ALTER TABLE workspace_members RENAME COLUMN name TO token_name;
ALTER TABLE workspace_members
    ALTER COLUMN workspace_id TYPE TEXT COLLATE "C",
    ALTER COLUMN user_id TYPE TEXT COLLATE "C",
    ADD COLUMN token_role TEXT,
    ADD COLUMN assigned_role TEXT,
    ADD COLUMN assigned_name TEXT,
    ADD COLUMN email TEXT,
    ADD COLUMN last_seen_at TEXT COLLATE "C",
    ADD COLUMN removed_at TEXT COLLATE "C",
    ADD COLUMN name_key TEXT COLLATE "C";

UPDATE workspace_members SET
    token_role = 'editor',
    last_seen_at = to_char(first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
    name_key = CASE
        WHEN token_name IS NULL THEN ''
        WHEN octet_length(token_name) = char_length(token_name) THEN lower(token_name COLLATE "C")
    END;

CREATE INDEX workspace_members_name_key ON workspace_members (workspace_id, name_key);
-- What each instance loads at start (`managed_members`): few rows, owners' decisions.
CREATE INDEX workspace_members_managed ON workspace_members (workspace_id, user_id)
    WHERE assigned_role IS NOT NULL OR removed_at IS NOT NULL;
-- The name keys the store still has to fill: none once it opened.
CREATE INDEX workspace_members_unkeyed ON workspace_members (workspace_id, user_id)
    WHERE name_key IS NULL;
