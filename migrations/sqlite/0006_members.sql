-- The member directory (`collab.store.members`): besides the users seen with a role in a
-- workspace, the members an owner provisioned, changed or removed. A user seen before keeps
-- their row: the name becomes the token's name, and their first sight their last.
--
-- The role a row written before this migration was seen with is unknown: 'editor' stands for
-- it. The directory only lists it and grants nothing by it (each request is checked against
-- its token's own role, capped by `assigned_role`), and the user's next sight writes theirs.
--
-- `name_key` is the listed name (`assigned_name`, else `token_name`) case-folded by the store
-- (`members.name_key`, `str.casefold`), '' without a name: what a prefix search compares. SQL
-- has no `str.casefold`, so here it is written for ASCII names only (where `lower` folds the
-- same); the others stay NULL until the store opens and fills them
-- (`sqlite_members.fill_name_keys`), before it serves anything.
ALTER TABLE workspace_members RENAME COLUMN name TO token_name;
ALTER TABLE workspace_members ADD COLUMN token_role TEXT;
ALTER TABLE workspace_members ADD COLUMN assigned_role TEXT;
ALTER TABLE workspace_members ADD COLUMN assigned_name TEXT;
ALTER TABLE workspace_members ADD COLUMN email TEXT;
ALTER TABLE workspace_members ADD COLUMN last_seen_at TEXT;
ALTER TABLE workspace_members ADD COLUMN removed_at TEXT;
ALTER TABLE workspace_members ADD COLUMN name_key TEXT;

-- A text is ASCII when it has as many bytes as characters (`length` of a text also stops at
-- its first NUL: such a name is left to the store).
UPDATE workspace_members SET
    token_role = 'editor',
    last_seen_at = first_seen,
    name_key = CASE
        WHEN token_name IS NULL THEN ''
        WHEN length(CAST(token_name AS BLOB)) = length(token_name) THEN lower(token_name)
    END;

CREATE INDEX workspace_members_name_key ON workspace_members (workspace_id, name_key);
-- What each instance loads at start (`managed_members`): few rows, owners' decisions.
CREATE INDEX workspace_members_managed ON workspace_members (workspace_id, user_id)
    WHERE assigned_role IS NOT NULL OR removed_at IS NOT NULL;
-- The name keys the store still has to fill: none once it opened.
CREATE INDEX workspace_members_unkeyed ON workspace_members (workspace_id, user_id)
    WHERE name_key IS NULL;
