-- The schema of the seed document, with the choices README.md's Schema section lists.
\set VERBOSITY terse
CREATE EXTENSION audiotricks CASCADE;
SELECT extname, extversion, extrelocatable, n.nspname AS schema
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname IN ('audiotricks', 'pgcrypto') ORDER BY 1;

-- every column: type, nullability, default, comment
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default,
       col_description(c.oid, a.attnum) IS NOT NULL AS commented
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'audiotricks'::regnamespace AND c.relkind IN ('r', 'p')
   AND NOT c.relispartition
 ORDER BY c.relname, a.attnum;

-- table comments
SELECT c.relname, obj_description(c.oid, 'pg_class')
  FROM pg_class c
 WHERE c.relnamespace = 'audiotricks'::regnamespace AND c.relkind IN ('r', 'p')
 ORDER BY 1;

-- constraints (primary keys, unique, foreign keys with their actions, checks)
SELECT conrelid::regclass AS tbl, conname, contype, pg_get_constraintdef(oid) AS def
  FROM pg_constraint
 WHERE connamespace = 'audiotricks'::regnamespace
 ORDER BY conrelid::regclass::text, conname;

-- indexes
SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid) AS def
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
 WHERE c.relnamespace = 'audiotricks'::regnamespace
 ORDER BY indexrelid::regclass::text;

-- triggers that maintain updated_at
SELECT tgrelid::regclass, tgname, pg_get_triggerdef(oid)
  FROM pg_trigger WHERE NOT tgisinternal
   AND tgrelid::regclass::text LIKE 'audiotricks.%' ORDER BY tgrelid::regclass::text, tgname;

-- every table is dumped by pg_dump
SELECT unnest(extconfig)::regclass::text AS config_table FROM pg_extension
 WHERE extname = 'audiotricks' ORDER BY 1;

-- RLS enabled and forced on every table, and the policies
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class
 WHERE relnamespace = 'audiotricks'::regnamespace AND relkind IN ('r', 'p') ORDER BY 1;
SELECT tablename, policyname, cmd, qual, with_check FROM pg_policies
 WHERE schemaname = 'audiotricks' ORDER BY 1, 2;

-- every function carries a comment and, if SECURITY DEFINER, a pinned
-- search_path, in all three schemas
SELECT p.oid::regprocedure AS function, p.prosecdef AS definer, p.proconfig,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS commented
  FROM pg_proc p
 WHERE p.pronamespace IN ('audiotricks'::regnamespace, 'audiotricks_internal'::regnamespace,
                          'audiotricks_api'::regnamespace)
 ORDER BY p.pronamespace::regnamespace::text, p.oid::regprocedure::text;
SELECT count(*) AS definer_without_search_path FROM pg_proc p
 WHERE p.pronamespace IN ('audiotricks'::regnamespace, 'audiotricks_internal'::regnamespace,
                          'audiotricks_api'::regnamespace)
   AND p.prosecdef
   AND NOT coalesce(p.proconfig @> '{"search_path=pg_catalog, pg_temp"}', false);

-- the schemas: owned by the installing superuser, members of the extension,
-- commented; PUBLIC may neither use nor create in the two new ones
SELECT n.nspname, pg_get_userbyid(n.nspowner) = current_user AS own,
       EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                 AND d.objid = n.oid AND d.deptype = 'e') AS member,
       obj_description(n.oid, 'pg_namespace') IS NOT NULL AS commented,
       has_schema_privilege('public', n.oid, 'USAGE') AS public_usage,
       has_schema_privilege('audiotricks_anon', n.oid, 'USAGE') AS anon_usage,
       has_schema_privilege('audiotricks_user', n.oid, 'CREATE') AS user_create
  FROM pg_namespace n WHERE n.nspname LIKE 'audiotricks%' ORDER BY 1;

-- the views of audiotricks_api: security_invoker, commented, every column
-- commented, auto-updatable, no secret column
SELECT c.relname, c.reloptions, obj_description(c.oid, 'pg_class') IS NOT NULL AS commented,
       (SELECT bool_and(col_description(c.oid, a.attnum) IS NOT NULL) FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0) AS columns_commented,
       pg_relation_is_updatable(c.oid, false) AS updatable_events,
       (SELECT string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0) AS columns
  FROM pg_class c WHERE c.relnamespace = 'audiotricks_api'::regnamespace ORDER BY 1;

-- nothing but USAGE on the schema is granted to PUBLIC
SELECT p.oid::regprocedure AS executable_by_public FROM pg_proc p
 WHERE p.pronamespace IN ('audiotricks'::regnamespace, 'audiotricks_internal'::regnamespace,
                          'audiotricks_api'::regnamespace)
   AND has_function_privilege('public', p.oid, 'EXECUTE') ORDER BY p.oid::regprocedure::text;
SELECT c.oid::regclass, has_table_privilege('public', c.oid, 'SELECT') AS public_select
  FROM pg_class c
 WHERE c.relnamespace IN ('audiotricks'::regnamespace, 'audiotricks_api'::regnamespace)
   AND c.relkind IN ('r', 'v') ORDER BY 1;

-- behaviour of the rules: NOT NULL, defaults, case-insensitive uniqueness,
-- ON DELETE CASCADE, updated_at maintenance, username and email checks
INSERT INTO audiotricks.users (email, username, password_hash)
VALUES ('a@example.com', 'alice', 'x') RETURNING email, username, is_active,
       created_at = now() AS created_now, updated_at = now() AS updated_now, last_login_at;
INSERT INTO audiotricks.users (email, username, password_hash)
VALUES ('A@EXAMPLE.COM', 'alice2', 'x');
INSERT INTO audiotricks.users (email, username, password_hash)
VALUES ('b@example.com', 'ALICE', 'x');
INSERT INTO audiotricks.users (email, username, password_hash)
VALUES ('c@example.com', 'bad name', 'x');
INSERT INTO audiotricks.users (email, username, password_hash)
VALUES ('not-an-email', 'carol', 'x');
INSERT INTO audiotricks.users (email, username, password_hash)
VALUES (NULL, 'carol', 'x');
INSERT INTO audiotricks.users (email, username, password_hash)
VALUES ('c@example.com', NULL, 'x');
INSERT INTO audiotricks.users (email, username, password_hash)
VALUES ('c@example.com', 'carol', NULL);
INSERT INTO audiotricks.users (email, username, password_hash)
VALUES (repeat('x', 250) || '@example.com', 'carol', 'x');
INSERT INTO audiotricks.users (email, username, password_hash)
VALUES ('c@example.com', repeat('c', 101), 'x');

INSERT INTO audiotricks.user_settings (user_id)
SELECT id FROM audiotricks.users WHERE username = 'alice'
RETURNING preferred_language, summary_quality, settings_json,
          openai_api_key_encrypted, elevenlabs_api_key_encrypted;
INSERT INTO audiotricks.user_settings (user_id)
SELECT id FROM audiotricks.users WHERE username = 'alice';
INSERT INTO audiotricks.user_settings (user_id) VALUES ('00000000-0000-0000-0000-000000000000');
INSERT INTO audiotricks.sessions (user_id, token_hash, expires_at)
SELECT id, 'h1', now() + interval '1 day' FROM audiotricks.users WHERE username = 'alice'
RETURNING token_hash, created_at = now() AS created_now;
INSERT INTO audiotricks.sessions (user_id, token_hash, expires_at)
SELECT id, 'h1', now() FROM audiotricks.users WHERE username = 'alice';
INSERT INTO audiotricks.sessions (user_id, token_hash, expires_at)
SELECT id, 'h2', NULL FROM audiotricks.users WHERE username = 'alice';
INSERT INTO audiotricks.sessions (user_id, token_hash, expires_at)
VALUES ('00000000-0000-0000-0000-000000000000', 'h3', now());
INSERT INTO audiotricks.audio_history (user_id, title)
SELECT id, 'first' FROM audiotricks.users WHERE username = 'alice'
RETURNING title, created_at = now() AS created_now;
INSERT INTO audiotricks.audio_history (user_id, title)
SELECT id, repeat('t', 501) FROM audiotricks.users WHERE username = 'alice';
-- (dated 2001: the errors name the partition a row goes to, here the default)
INSERT INTO audiotricks.audio_history (user_id, title, created_at)
VALUES ('00000000-0000-0000-0000-000000000000', 'orphan', '2001-01-01');
-- user_id defaults to the identity, which is NULL here
INSERT INTO audiotricks.audio_history (title, created_at) VALUES ('nobody', '2001-01-01');

-- updated_at moves on update (in a later transaction)
CREATE TEMP TABLE before AS
SELECT u.updated_at AS u, s.updated_at AS s FROM audiotricks.users u
  JOIN audiotricks.user_settings s ON s.user_id = u.id WHERE u.username = 'alice';
UPDATE audiotricks.users SET updated_at = '2000-01-01', is_active = true WHERE username = 'alice';
UPDATE audiotricks.user_settings SET updated_at = '2000-01-01', summary_quality = 'fast';
SELECT u.updated_at > '2000-01-01' AS users_touched, s.updated_at > '2000-01-01' AS settings_touched
  FROM audiotricks.users u JOIN audiotricks.user_settings s ON s.user_id = u.id
 WHERE u.username = 'alice';

-- friendly validation: every CHECK an application role can hit raises 23514
-- naming the field and the rule, with schema, table, column and constraint
-- in the error's fields; just inside and just outside each boundary, and
-- NULL passes (the history sizes, JSON shapes and audio_url: history.sql,
-- limits.sql).  diag(q): 'ok', or the error's fields.
CREATE FUNCTION pg_temp.diag(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; sch text; tbl text; col text; con text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, sch = SCHEMA_NAME,
        tbl = TABLE_NAME, col = COLUMN_NAME, con = CONSTRAINT_NAME;
    RETURN concat_ws(' | ', st, msg, sch, tbl, col, con);
END
$$;
SELECT id AS alice_id FROM audiotricks.users WHERE username = 'alice' \gset
SELECT v, pg_temp.diag(format('UPDATE audiotricks.user_settings SET summary_quality = %L WHERE user_id = %L',
                              v, :'alice_id')) AS summary_quality
  FROM (VALUES ('fast'), ('balanced'), ('detailed'), ('slow'), ('Fast'), ('')) t(v);
SELECT v, pg_temp.diag(format('UPDATE audiotricks.user_settings SET preferred_language = %L WHERE user_id = %L',
                              v, :'alice_id')) AS preferred_language
  FROM (VALUES ('en'), ('deu'), ('pt-BR'), ('zh-Hant-TW'), ('de-1234567'), ('e'), ('engl'),
               ('pt_'), ('en US'), ('x-abc'), ('zh-Hant-TWX')) t(v);
SELECT col, v, pg_temp.diag(format('INSERT INTO audiotricks.audio_history (user_id, %I) VALUES (%L, %s)',
                                   col, :'alice_id', v)) AS result
  FROM (VALUES ('duration_seconds'), ('file_size_bytes')) c(col),
       (VALUES ('0'), ('-1'), ('NULL'), ('2147483647')) t(v)
 ORDER BY 1, 2;
UPDATE audiotricks.audio_history SET duration_seconds = -1 WHERE title = 'first';
UPDATE audiotricks.audio_history SET file_size_bytes = -1 WHERE title = 'first';
-- the helper itself: NULL passes, a constraint written without names is an error
SELECT audiotricks_internal.at_check_rule(NULL, NULL, NULL, NULL, NULL) AS null_passes,
       audiotricks_internal.at_check_rule(true, NULL, NULL, NULL, NULL) AS true_passes;
SELECT pg_temp.diag($$SELECT audiotricks_internal.at_check_rule(false, 't', 'c', 'k', NULL)$$) AS no_rule,
       pg_temp.diag($$SELECT audiotricks_internal.at_check_rule(false, NULL, 'c', 'k', 'r')$$) AS no_table,
       pg_temp.diag($$SELECT audiotricks_internal.at_check_rule(false, 't', 'c', 'k', 'must be r')$$) AS all_given;

-- deleting a user removes all their sessions, settings and history
DELETE FROM audiotricks.users WHERE username = 'alice';
SELECT (SELECT count(*) FROM audiotricks.sessions) AS sessions,
       (SELECT count(*) FROM audiotricks.user_settings) AS settings,
       (SELECT count(*) FROM audiotricks.audio_history) AS history;

-- audio_history's partitions: the maintenance makes the current period's
-- and the next three (the history tests rely on them existing)
SELECT count(*) >= 0 AS maintained FROM audiotricks.at_maintain_history_partitions();
SELECT count(*) AS range_partitions FROM pg_partition_tree('audiotricks.audio_history')
 WHERE isleaf AND relid <> 'audiotricks.audio_history_default'::regclass;

-- the extension refuses to be relocated
ALTER EXTENSION audiotricks SET SCHEMA public;
