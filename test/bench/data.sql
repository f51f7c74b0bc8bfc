-- test/bench/data.sql — the benchmark's data set, part 1: vocabulary,
-- transcripts, users and the history loaders (test/bench/run calls them in
-- parallel chunks, then data2.sql).  Runs after plainsql.sql: every user and
-- history entry goes into both schemas, with the same ids.
--
-- Realistic without per-row bcrypt: every user gets the same precomputed
-- bcrypt hash (cost 12); transcripts are about 2.5 KB of words drawn from a
-- Zipf-like vocabulary whose head is the English words of everyday speech,
-- so tsvectors and TOAST behave as they would with real transcripts.
\set ON_ERROR_STOP 1

CREATE SCHEMA bench;

-- 120 common spoken-English words, then made-up content words
CREATE TABLE bench.vocab (i int PRIMARY KEY, w text NOT NULL);
INSERT INTO bench.vocab
SELECT o - 1, w FROM unnest(string_to_array(
  'the and to of a i you that it in is we so this was for on with but be '
  'have are they what not like just do know can all about there if at as my '
  'me one or he she um uh yeah okay really think going people right time get '
  'because then out now from more would could when up which their will how '
  'our by an your them some very also been first into over new other see '
  'make well work way want even good much back these said our only year '
  'many those thing things something lot actually kind sort point look go '
  'mean data model team product question today talk next',
  ' ')) WITH ORDINALITY AS t(w, o);
INSERT INTO bench.vocab
SELECT 120 + i,
       (ARRAY['ka','lo','mi','ne','ru','sa','ti','vo','ze','ba','de','fi','go',
              'hu','ja','ko','le','ma','no','pi','ra','se','tu','wa'])[1 + (i * 7) % 24]
    || (ARRAY['ka','lo','mi','ne','ru','sa','ti','vo','ze','ba','de','fi','go',
              'hu','ja','ko','le','ma','no','pi','ra','se','tu','wa'])[1 + (i / 24) % 24]
    || (ARRAY['ter','ling','ment','ness','tion','ry','ble','ster','don','ward'])[1 + (i / 576) % 10]
FROM generate_series(0, 4879) i;

-- 2,000 distinct transcripts of 345 words (about 2 KB), and 2,000 titles
-- and summaries; history rows cycle through them
CREATE TABLE bench.paragraphs (p int PRIMARY KEY, title text, summary text, txt text);
INSERT INTO bench.paragraphs
SELECT s.p,
       initcap(string_agg(v.w, ' ' ORDER BY s.j) FILTER (WHERE s.j <= 5)),
       string_agg(v.w, ' ' ORDER BY s.j) FILTER (WHERE s.j BETWEEN 6 AND 55),
       string_agg(v.w, ' ' ORDER BY s.j) FILTER (WHERE s.j > 55)
FROM (SELECT p, j, floor(5000 * random() ^ 5)::int AS wi
        FROM generate_series(0, 1999) p, generate_series(1, 400) j) s
JOIN bench.vocab v ON v.i = s.wi
GROUP BY s.p;

CREATE TABLE bench.params (name text PRIMARY KEY, value text NOT NULL);

-- the search word: a content word in 0.25% of transcripts (5 of 2,000)
INSERT INTO bench.params
SELECT 'search_query', word
FROM ts_stat($$SELECT to_tsvector('english', txt) FROM bench.paragraphs$$)
WHERE length(word) >= 6 AND word !~ '[^a-z]'
ORDER BY abs(ndoc - 5), word
LIMIT 1;

-- the tsquery at_history_search builds for it: websearch_to_tsquery in each
-- configuration the user's entries are in, OR-ed.  Every entry here is
-- English ("language": "en"), so that is the English parse alone (the floor
-- runs the search query with this tsquery).
INSERT INTO bench.params
SELECT 'search_tsquery', websearch_to_tsquery('english', p.value)::text
  FROM bench.params p WHERE p.name = 'search_query';

-- one bcrypt hash per cost, computed once
INSERT INTO bench.params VALUES
    ('password', 'Bench-passw0rd'),
    ('hash12', public.crypt('Bench-passw0rd', public.gen_salt('bf', 12))),
    ('hash4', public.crypt('Bench-passw0rd', public.gen_salt('bf', 4)));

-- 10,000 users: 'heavy' (200,000 entries), user00002..user10000 (20 each),
-- plus the scaling users (10k, 100k and optionally 1M entries)
INSERT INTO audiotricks.users (email, username, password_hash, created_at)
SELECT name || '@example.com', name, (SELECT value FROM bench.params WHERE name = 'hash12'),
       timestamptz '2024-01-01 00:00+00' + i * interval '1 hour'
FROM (SELECT i, CASE WHEN i = 1 THEN 'heavy' ELSE 'user' || lpad(i::text, 5, '0') END AS name
        FROM generate_series(1, 10000) i
      UNION ALL
      SELECT 10000 + k, n FROM unnest(ARRAY['scale10k', 'scale100k', 'scale1m']) WITH ORDINALITY AS t(n, k)) u
ORDER BY i;
INSERT INTO audiotricks.user_settings (user_id) SELECT id FROM audiotricks.users;
INSERT INTO plainsql.users (id, email, username, password_hash, created_at, updated_at, is_active)
SELECT id, email, username, password_hash, created_at, updated_at, is_active FROM audiotricks.users;
INSERT INTO plainsql.user_settings (user_id) SELECT id FROM plainsql.users;

-- The loaders insert into audiotricks.audio_history and copy the inserted
-- rows (RETURNING) into plainsql.audio_history in the same statement, with
-- the search document audiotricks computed (the competitor's trigger, created
-- after the load, computes the same for new rows).  Without audiotricks'
-- search column (a build before the history functions) the copy computes it.
SELECT CASE WHEN EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'audiotricks.audio_history'::regclass
                                                    AND attname = 'search_tsv' AND NOT attisdropped)
            THEN 'ins.search_tsv'
            ELSE $$setweight(to_tsvector('english', coalesce(ins.title, '')), 'A') ||
                   setweight(to_tsvector('english', coalesce(ins.summary, '')), 'B') ||
                   setweight(to_tsvector('english', coalesce(ins.transcript, '')), 'C')$$
       END AS tsv_expr \gset

-- bench.load_history(username, from, to): entries from..to of a user, entry
-- n created n * 97 s before 2026-11-01 (so n = 1 is the newest)
SELECT replace($f$
CREATE FUNCTION bench.load_history(p_user text, p_from int, p_to int) RETURNS bigint
LANGUAGE sql AS $$
WITH ins AS (
    INSERT INTO audiotricks.audio_history
        (user_id, title, audio_url, file_size_bytes, duration_seconds,
         transcript, summary, key_moments, processing_options, created_at)
    SELECT u.id, 'Episode ' || n || ': ' || p.title,
           'https://cdn.example.com/audio/' || u.username || '/' || n || '.mp3',
           2000000 + (n::bigint * 7919) % 50000000, 60 + (n * 31) % 3600,
           p.txt, p.summary,
           '[{"timestamp": "00:01:23", "description": "Introduction", "confidence": 0.95},
             {"timestamp": "00:12:05", "description": "Main point", "confidence": 0.8}]',
           '{"language": "en", "model": "whisper-1", "includeTimestamps": true}',
           timestamptz '2026-11-01 00:00+00' - n * interval '97 seconds'
      FROM audiotricks.users u, generate_series(p_from, p_to) n
      JOIN bench.paragraphs p ON p.p = (n::bigint * 7919) % 2000
     WHERE lower(u.username) = lower(p_user)
    RETURNING *),
cp AS (
    INSERT INTO plainsql.audio_history
    SELECT ins.id, ins.user_id, ins.title, ins.audio_url, ins.file_size_bytes, ins.duration_seconds,
           ins.transcript, ins.summary, ins.key_moments, ins.processing_options, ins.created_at,
           @TSV@
      FROM ins
    RETURNING 1)
SELECT count(*) FROM cp
$$
$f$, '@TSV@', :'tsv_expr') \gexec

-- bench.load_light(parity): 20 entries for each light user with id parity
SELECT replace($f$
CREATE FUNCTION bench.load_light(parity int) RETURNS bigint
LANGUAGE sql AS $$
WITH ins AS (
    INSERT INTO audiotricks.audio_history
        (user_id, title, audio_url, file_size_bytes, duration_seconds,
         transcript, summary, key_moments, processing_options, created_at)
    SELECT u.id, 'Episode ' || n || ': ' || p.title,
           'https://cdn.example.com/audio/' || u.username || '/' || n || '.mp3',
           2000000 + (n * 7919) % 50000000, 60 + (n * 31) % 3600,
           p.txt, p.summary,
           '[{"timestamp": "00:01:23", "description": "Introduction", "confidence": 0.95}]',
           '{"language": "en", "model": "whisper-1"}',
           timestamptz '2026-11-01 00:00+00' - (n * 86400 + k * 13) * interval '1 second'
      FROM (SELECT id, username, row_number() OVER (ORDER BY id) AS k
              FROM audiotricks.users WHERE username LIKE 'user%') u,
           generate_series(1, 20) n
      JOIN bench.paragraphs p ON true
     WHERE u.k % 2 = parity AND p.p = (u.k * 20 + n) % 2000
    RETURNING *),
cp AS (
    INSERT INTO plainsql.audio_history
    SELECT ins.id, ins.user_id, ins.title, ins.audio_url, ins.file_size_bytes, ins.duration_seconds,
           ins.transcript, ins.summary, ins.key_moments, ins.processing_options, ins.created_at,
           @TSV@
      FROM ins
    RETURNING 1)
SELECT count(*) FROM cp
$$
$f$, '@TSV@', :'tsv_expr') \gexec
