-- Every rule with a number, tested just inside and just outside, where the
-- feature's own test file does not already (accounts: email 255/256,
-- username 100/101, password 72/73 bytes at registration, bcrypt_cost 3/32;
-- history: page_size 0/1/100/101 of at_history_page, title 500/501,
-- audio_url 2048/2049, confidence 0/1, timestamps :59/:60; keys: plaintext
-- 1 MiB/+1, context 1025, api key 4097, batch_size 0/1000001).
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;

------------------------------------------------------------------ password: 8 characters, 72 bytes
-- exactly 7 and 8 characters, each with a lower, an upper and a digit
SELECT length(p) AS chars, pg_temp.try(format('SELECT audiotricks.at_register(%L, %L, %L)',
       'bnd' || length(p) || '@example.com', 'bnd_len' || length(p), p))
  FROM unnest(ARRAY['Passw0r', 'Passw0rd']) p ORDER BY 1;
-- characters, not bytes: 7 characters in 9 bytes are too few, 8 in 10 enough
SELECT length(p) AS chars, octet_length(p) AS bytes, pg_temp.try(format('SELECT audiotricks.at_register(%L, %L, %L)',
       'bndmb' || length(p) || '@example.com', 'bnd_mb' || length(p), p))
  FROM unnest(ARRAY['Pässw0r', 'Pässw0rd']) p ORDER BY 1;
-- 72 bytes with multibyte characters is accepted, 73 is not
SELECT octet_length(p) AS bytes, pg_temp.try(format('SELECT audiotricks.at_register(%L, %L, %L)',
       'bndb' || octet_length(p) || '@example.com', 'bnd_b' || octet_length(p), p))
  FROM unnest(ARRAY['Aa1' || repeat('é', 34) || 'x', 'Aa1' || repeat('é', 35)]) p ORDER BY 1;
-- a 72-byte password logs in; the same followed by one more byte does not,
-- though bcrypt alone would say it matches (it reads 72 bytes)
SELECT pg_temp.try(format('SELECT audiotricks.at_register(%L, %L, %L)',
       'bnd72@example.com', 'bnd_72', 'Aa1' || repeat('x', 69))) AS register_72;
SELECT pg_temp.try(format('SELECT * FROM audiotricks.at_login(%L, %L)', 'bnd_72', 'Aa1' || repeat('x', 69))) AS login_72,
       pg_temp.try(format('SELECT * FROM audiotricks.at_login(%L, %L)', 'bnd_72', 'Aa1' || repeat('x', 70))) AS login_73;
-- and so does every function that asks for the password again
SELECT token AS t72 FROM audiotricks.at_login('bnd_72', 'Aa1' || repeat('x', 69)) \gset
BEGIN;
SELECT audiotricks.at_authenticate(:'t72') IS NOT NULL AS signed_in;
SELECT pg_temp.try(format('SELECT audiotricks.at_change_password(%L, %L)', 'Aa1' || repeat('x', 70), 'N3wPassword')) AS change_with_73;
SELECT pg_temp.try(format('SELECT audiotricks.at_change_password(%L, %L)', 'Aa1' || repeat('x', 69), 'N3wPassword')) AS change_with_72;
COMMIT;
-- a new password of exactly 7 and 8 characters
SELECT token AS t72b FROM audiotricks.at_login('bnd_72', 'N3wPassword') \gset
BEGIN;
SELECT audiotricks.at_authenticate(:'t72b') IS NOT NULL AS signed_in;
SELECT pg_temp.try($$SELECT audiotricks.at_change_password('N3wPassword', 'N3wPass')$$) AS new_7,
       pg_temp.try($$SELECT audiotricks.at_change_password('N3wPassword', 'N3wPassw')$$) AS new_8;
COMMIT;

------------------------------------------------------------------ settings
SELECT s AS setting, pg_temp.try(s) AS result
  FROM unnest(ARRAY[
    'SET audiotricks.bcrypt_cost = 4', 'SET audiotricks.bcrypt_cost = 31',
    'SET audiotricks.session_ttl = 0', 'SET audiotricks.session_ttl = 1',
    $$SET audiotricks.session_ttl = '366d'$$, 'SET audiotricks.session_ttl = 31622401',
    'SET audiotricks.session_max_lifetime = 0', 'SET audiotricks.session_max_lifetime = 1',
    $$SET audiotricks.session_max_lifetime = '3660d'$$, 'SET audiotricks.session_max_lifetime = 316224001']) s;
RESET audiotricks.session_ttl;
RESET audiotricks.session_max_lifetime;
SET audiotricks.bcrypt_cost = 4;
-- a 1-second session lives one second (exp - iat), 366 days 366 days
SET audiotricks.session_ttl = 1;
-- (the token's own exp - iat, and expires_at is its exp: a slow login,
-- under valgrind, may cross a second after the statement started)
WITH l AS (SELECT l.expires_at, split_part(l.token, '.', 2) AS p
             FROM audiotricks.at_login('bnd_72', 'N3wPassw') l),
c AS (SELECT l.expires_at,
             convert_from(decode(translate(p, '-_', '+/') || repeat('=', (4 - length(p) % 4) % 4),
                                 'base64'), 'UTF8')::jsonb AS claims FROM l)
SELECT (claims->>'exp')::bigint - (claims->>'iat')::bigint = 1
       AND expires_at = to_timestamp((claims->>'exp')::bigint) AS ttl_1s
  FROM c;
SET audiotricks.session_ttl = '366d';
SET audiotricks.session_max_lifetime = '3660d';
SELECT abs(extract(epoch FROM l.expires_at - now() - interval '366 days')) < 60 AS ttl_366d
  FROM audiotricks.at_login('bnd_72', 'N3wPassw') l;
RESET audiotricks.session_ttl;
RESET audiotricks.session_max_lifetime;

------------------------------------------------------------------ history: page_size and query length
SELECT token AS th FROM audiotricks.at_login('bnd_72', 'N3wPassw') \gset
BEGIN;
SELECT audiotricks.at_authenticate(:'th') IS NOT NULL AS signed_in;
SELECT count(audiotricks.at_history_add(title => 'zebra ' || g)) AS added FROM generate_series(1, 101) g;
SELECT n AS page_size,
       pg_temp.try(format('SELECT count(*) FROM audiotricks.at_history_search(%L, %s)', 'zebra', n)) AS search,
       (SELECT count(*) FROM audiotricks.at_history_search('zebra', n) WHERE n BETWEEN 1 AND 100) AS rows
  FROM unnest(ARRAY[0, 1, 100, 101]) n;
SELECT n AS page_size, (SELECT count(*) FROM audiotricks.at_history_page(n)) AS rows
  FROM unnest(ARRAY[1, 100]) n;
-- a query of 1000 characters is searched, 1001 is not (characters, not bytes)
SELECT length(q) AS chars, octet_length(q) AS bytes,
       pg_temp.try(format('SELECT count(*) FROM audiotricks.at_history_search(%L)', q)) AS search
  FROM unnest(ARRAY[repeat('zebra ', 166) || 'zebr', repeat('zebra ', 166) || 'zebra',
                    repeat('é', 1000), repeat('é', 1001)]) q ORDER BY 1, 2;
SELECT count(*) AS longest_query_hits FROM audiotricks.at_history_search(repeat(' ', 995) || 'zebra', 100);
-- the API key: 4096 characters are stored, 4097 are not
SELECT pg_temp.try($$SELECT audiotricks.at_set_api_key('openai', repeat('k', 4096))$$) AS key_4096,
       pg_temp.try($$SELECT audiotricks.at_set_api_key('openai', repeat('k', 4097))$$) AS key_4097;
SELECT length(audiotricks.at_get_api_key('openai')) AS stored_length;
COMMIT;

------------------------------------------------------------------ keys: context and batch size
SELECT pg_temp.try($$SELECT audiotricks.at_decrypt_key(audiotricks.at_encrypt_key('x', repeat('c', 1024)), repeat('c', 1024))$$) AS context_1024,
       pg_temp.try($$SELECT audiotricks.at_encrypt_key('x', repeat('c', 1025))$$) AS context_1025;
SELECT pg_temp.try($$SELECT audiotricks.at_rotate_api_keys(1)$$) AS batch_1,
       pg_temp.try($$SELECT audiotricks.at_rotate_api_keys(1000000)$$) AS batch_1000000,
       pg_temp.try($$SELECT audiotricks.at_rotate_api_keys(0)$$) AS batch_0,
       pg_temp.try($$SELECT audiotricks.at_rotate_api_keys(1000001)$$) AS batch_1000001;

------------------------------------------------------------------ clean up
DELETE FROM audiotricks.users WHERE username LIKE 'bnd\_%';
