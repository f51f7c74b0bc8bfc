-- Size limits of the user-supplied history and settings values (README,
-- "Validation"), at each boundary: exactly the limit is accepted, one byte
-- more is refused with 23514 naming the column and the limit, through the
-- functions and through direct INSERT/UPDATE as an application role under
-- row-level security; sizes are bytes, so multibyte characters count by
-- their encoded length.  And the bounded search document: a transcript whose
-- words would overflow a tsvector (1 MB) is indexed up to the bound instead
-- of failing.
\set VERBOSITY terse
\set ON_ERROR_ROLLBACK on
SET audiotricks.bcrypt_cost = 4;
SELECT audiotricks.at_register('lim-a@example.com', 'lim_alice', 'Passw0rdA') IS NOT NULL AS alice;
SELECT token AS ta FROM audiotricks.at_login('lim_alice', 'Passw0rdA') \gset
CREATE ROLE regress_limits_app;
GRANT audiotricks_user TO regress_limits_app;
SET ROLE regress_limits_app;

-- runs a statement; 'ok', or the error's SQLSTATE, message, column and detail
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
    col text;
    det text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            col = COLUMN_NAME, det = PG_EXCEPTION_DETAIL;
    RETURN st || ' ' || msg || coalesce(' [column ' || nullif(col, '') || ']', '')
        || coalesce(' (' || nullif(det, '') || ')', '');
END
$$;

-- the values, with their sizes in bytes
CREATE TEMP TABLE v (name text PRIMARY KEY, t text, j jsonb);
INSERT INTO v (name, t) VALUES
    ('transcript max', repeat('abc ', 2097152)),
    ('transcript max+1', repeat('abc ', 2097152) || 'x'),
    -- 2-byte é: 1,398,101 "é " and an "a" make 4,194,304 bytes
    ('transcript max multibyte', repeat('é ', 2796202) || 'é'),
    -- the last é straddles the limit: 4,194,305 bytes, 2,796,203 characters
    ('transcript max+1 multibyte', repeat('é ', 2796202) || 'aé'),
    ('summary max', repeat('abc ', 16384)),
    ('summary max+1', repeat('abc ', 16384) || 'x'),
    -- 3-byte 日: 16,384 "日 " make 65,536 bytes
    ('summary max multibyte', repeat('日 ', 16384)),
    ('summary max+1 multibyte', repeat('日 ', 16383) || 'ab日');
-- jsonb: a string member padded so that the binary form is exactly the limit
-- (pg_column_size of a fresh value: a stored one may be compressed)
CREATE FUNCTION pg_temp.padded(base jsonb, path text[], bytes int, extra int) RETURNS jsonb
LANGUAGE sql AS $$
SELECT jsonb_set(base, path, to_jsonb(repeat('x', bytes - (pg_column_size(base) - 4) + extra)))
$$;
INSERT INTO v (name, j) VALUES
    ('key_moments max', pg_temp.padded('[{"timestamp": "00:00:01", "description": ""}]', '{0,description}', 262144, 0)),
    ('key_moments max+1', pg_temp.padded('[{"timestamp": "00:00:01", "description": ""}]', '{0,description}', 262144, 1)),
    ('processing_options max', pg_temp.padded('{"language": "en", "notes": ""}', '{notes}', 65536, 0)),
    ('processing_options max+1', pg_temp.padded('{"language": "en", "notes": ""}', '{notes}', 65536, 1)),
    ('settings_json max', pg_temp.padded('{"theme": "dark", "notes": ""}', '{notes}', 16384, 0)),
    ('settings_json max+1', pg_temp.padded('{"theme": "dark", "notes": ""}', '{notes}', 16384, 1));
-- settings_json with 2-byte characters, exactly 16,384 bytes
INSERT INTO v (name, j)
SELECT 'settings_json max multibyte',
       jsonb_set(j, '{notes}', to_jsonb(repeat('é', (length(j->>'notes')) / 2)
                                         || repeat('x', length(j->>'notes') % 2)))
  FROM v WHERE name = 'settings_json max';
SELECT name, octet_length(t) AS text_bytes, length(t) AS text_chars,
       pg_column_size(j::text::jsonb) - 4 AS jsonb_bytes
  FROM v ORDER BY name;

------------------------------------------------------------------ at_history_add
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT name, pg_temp.try(format('SELECT audiotricks.at_history_add(title => %L, %s => %L)',
                                name, split_part(name, ' ', 1), coalesce(t, j::text))) AS result
  FROM v WHERE name NOT LIKE 'settings_json%' ORDER BY name;
-- what was stored, and the search document of each
SELECT title, octet_length(transcript) AS transcript_bytes, octet_length(summary) AS summary_bytes,
       pg_column_size(key_moments::text::jsonb) - 4 AS key_moments_bytes,
       pg_column_size(processing_options::text::jsonb) - 4 AS processing_options_bytes,
       length(search_tsv) AS lexemes
  FROM audiotricks.audio_history ORDER BY title;
COMMIT;

------------------------------------------------------------------ direct INSERT, UPDATE
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
DELETE FROM audiotricks.audio_history;
SELECT name, pg_temp.try(format('INSERT INTO audiotricks.audio_history (title, %s) VALUES (%L, %L)',
                                split_part(name, ' ', 1), name, coalesce(t, j::text))) AS result
  FROM v WHERE name NOT LIKE 'settings_json%' ORDER BY name;
SELECT count(*) AS inserted FROM audiotricks.audio_history;
-- a stored entry at the limit (TOASTed) keeps passing when another column
-- changes; growing it by one byte is refused
SELECT pg_temp.try($$UPDATE audiotricks.audio_history SET title = 'renamed' WHERE title = 'transcript max'$$) AS other_column;
SELECT pg_temp.try($$UPDATE audiotricks.audio_history SET transcript = transcript || 'x' WHERE title = 'renamed'$$) AS one_more_byte;
SELECT pg_temp.try($$UPDATE audiotricks.audio_history SET summary = summary || 'é' WHERE title = 'summary max multibyte'$$) AS two_more_bytes;
SELECT pg_temp.try($$UPDATE audiotricks.audio_history SET key_moments = key_moments || '[{"timestamp": "00:00:02", "description": ""}]'
                      WHERE title = 'key_moments max'$$) AS one_more_moment;
SELECT pg_temp.try($$UPDATE audiotricks.audio_history SET processing_options = processing_options || '{"model": "x"}'
                      WHERE title = 'processing_options max'$$) AS one_more_key;
SELECT title, octet_length(transcript) AS transcript_bytes FROM audiotricks.audio_history
 WHERE transcript IS NOT NULL ORDER BY title;
COMMIT;

------------------------------------------------------------------ settings
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT name, pg_temp.try(format('SELECT audiotricks.at_update_settings(settings_json => %L)', j)) AS at_update_settings,
       pg_temp.try(format('UPDATE audiotricks.user_settings SET settings_json = %L', j)) AS direct_update
  FROM v WHERE name LIKE 'settings_json%' ORDER BY name;
SELECT pg_column_size(settings_json::text::jsonb) - 4 AS stored_bytes FROM audiotricks.user_settings;
-- an update that leaves settings_json alone is not refused by the check
SELECT pg_temp.try($$SELECT audiotricks.at_update_settings(summary_quality => 'fast')$$) AS other_setting;
COMMIT;

------------------------------------------------------------------ search document
-- 40,000 distinct words of 32 letters (1.3 MB): their lexemes would need
-- 1.4 MB, more than a tsvector holds (PostgreSQL's to_tsvector raises 54000
-- "string is too long for tsvector").  The entry is accepted; its search
-- document keeps the words that fit, from the start: after the title's two
-- words (23 bytes), 1,048,552 bytes / 37 (32 bytes, an alignment byte, a
-- position count and a position) = 28,339 words of the transcript.
CREATE TEMP TABLE words AS
SELECT g, translate(md5(g::text), '0123456789', 'ghijklmnop') AS w FROM generate_series(1, 40000) g;
SELECT pg_temp.try($$SELECT to_tsvector('simple', string_agg(w, ' ' ORDER BY g)) FROM words$$) AS plain_to_tsvector;
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
DELETE FROM audiotricks.audio_history;
SELECT audiotricks.at_history_add(title => 'distinct words', transcript => string_agg(w, ' ' ORDER BY g),
                                  processing_options => '{"language": "simple"}') IS NOT NULL AS added
  FROM words;
SELECT octet_length(transcript) AS transcript_bytes, length(search_tsv) AS lexemes
  FROM audiotricks.audio_history;
-- the first words are searchable, those past the bound are not
SELECT g, count(h.*) AS found FROM words LEFT JOIN LATERAL audiotricks.at_history_search(w) h ON true
 WHERE g IN (1, 28336, 28337, 28338, 28339, 28340) GROUP BY g ORDER BY g;
-- the same through a direct insert, with a summary taking part of the budget
-- (each of its 10,000 words counts 10 bytes, before repeats are merged)
INSERT INTO audiotricks.audio_history (title, summary, transcript, processing_options)
SELECT 'direct', repeat('lorem ', 10000), string_agg(w, ' ' ORDER BY g), '{"language": "simple"}' FROM words;
SELECT length(search_tsv) AS lexemes FROM audiotricks.audio_history WHERE title = 'direct';
COMMIT;
-- 5 MiB of distinct words (158,888 words of 32 letters and a space): saved
-- whole, never refused for its search document.  The document indexes a
-- bounded prefix (the first 1 MB of the text, and words while they fit in a
-- tsvector: 28,339 here); a word from the start is found, one past the
-- prefix is stored but not searchable (README, "Validation").
CREATE TEMP TABLE big AS
SELECT g, translate(md5(g::text), '0123456789', 'ghijklmnop') AS w FROM generate_series(1, 158888) g;
SELECT string_agg(w, ' ' ORDER BY g) AS big_text FROM big \gset
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
DELETE FROM audiotricks.audio_history;
SELECT audiotricks.at_history_add(title => 'five mib', transcript => :'big_text',
                                  processing_options => '{"language": "simple"}') IS NOT NULL AS added;
SELECT octet_length(transcript) AS transcript_bytes, octet_length(transcript) > 5 * 1024 * 1024 AS over_5_mib,
       transcript = :'big_text' AS stored_whole, length(search_tsv) AS lexemes
  FROM audiotricks.audio_history;
SELECT g, count(h.*) AS found FROM big LEFT JOIN LATERAL audiotricks.at_history_search(w) h ON true
 WHERE g IN (1, 2, 28339, 28340, 100000, 158888) GROUP BY g ORDER BY g;
COMMIT;
DROP TABLE big;
\unset big_text

-- the document never exceeds a tsvector: text without spaces is cut at a
-- character boundary (the 1 MB "word" is too long to index: a notice)
SELECT length(audiotricks_internal.at_history_tsv('simple', NULL, 'title', repeat('é', 600000), 'x')) AS lexemes;

-- clean up
DROP TABLE v, words;
DROP FUNCTION pg_temp.try(text), pg_temp.padded(jsonb, text[], int, int);
RESET ROLE;
DELETE FROM audiotricks.users WHERE username = 'lim_alice';
DROP ROLE regress_limits_app;
