-- roster store on PostgreSQL, schema version 3: the twin of
-- ../0003_ids_and_scopes.sql. Ids come from identity columns, whose
-- sequences never hand out a value twice (a rolled-back insert leaves a
-- gap), so only token scopes change here.
--
-- Token scopes were group names: a renamed group lost its tokens and a
-- group made again under a deleted one's name inherited them. They become
-- the groups' ids. A scope naming a group that no longer exists (or that
-- cannot be read) is left as it was: it no longer reads as a scope, and the
-- token is refused rather than let through.
DO $$
DECLARE
    t RECORD;
    ids TEXT;
BEGIN
    FOR t IN SELECT id, scope FROM tokens WHERE scope IS NOT NULL LOOP
        BEGIN
            SELECT CASE
                       WHEN bool_and(g.id IS NOT NULL) IS FALSE THEN NULL
                       ELSE coalesce(json_agg(g.id ORDER BY g.id), '[]'::json)::text
                   END
              INTO ids
              FROM json_array_elements_text(t.scope::json) AS s(name)
              LEFT JOIN groups g ON g.name = s.name;
            IF ids IS NOT NULL THEN
                UPDATE tokens SET scope = ids WHERE id = t.id;
            END IF;
        EXCEPTION WHEN others THEN
            NULL;
        END;
    END LOOP;
END
$$;
