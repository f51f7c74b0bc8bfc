-- Encrypted API keys: at_encrypt_key, at_decrypt_key, at_set_api_key,
-- at_get_api_key, at_rotate_api_keys (src/keys.c, src/ciphertext.c).
-- The cluster's key file (test/lib/cluster.sh) holds keys 1 and 2, current 2.
-- Nothing here prints a ciphertext, a key or a random value: only properties.
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;

-- try(sql): 'ok', or the SQLSTATE and message of the error it raised
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

------------------------------------------------------------------------------
-- the raw pair
------------------------------------------------------------------------------
-- round trips: empty, 1 byte, 10 kB, multi-byte UTF-8; with and without context
SELECT label, octet_length(v) AS bytes,
       audiotricks.at_decrypt_key(audiotricks.at_encrypt_key(v)) = v AS round_trip,
       audiotricks.at_decrypt_key(audiotricks.at_encrypt_key(v, 'ctx'), 'ctx') = v AS with_context,
       audiotricks.at_encrypt_key(v) <> audiotricks.at_encrypt_key(v) AS randomized,
       octet_length(v) < 2 OR strpos(audiotricks.at_encrypt_key(v), v) = 0 AS no_plaintext_inside
  FROM (VALUES ('empty', ''), ('1 byte', 'x'), ('10 kB', repeat('k', 10240)),
               ('utf-8', 'clé-ключ-鍵-🔑')) t(label, v)
 ORDER BY bytes;

-- self-describing and safe for JSON and CSV: at1.<key id>.<fingerprint>.<nonce>.<ciphertext+tag>
SELECT c ~ '^at1\.[1-9][0-9]*\.[A-Za-z0-9_-]{11}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$' AS shape,
       split_part(c, '.', 2) AS key_id,
       length(c) AS chars,                   -- 35 + base64url(5 + 16 bytes)
       to_json(c)::text = '"' || c || '"' AS json_safe,
       c !~ '[,"\s]' AS csv_safe
  FROM (SELECT audiotricks.at_encrypt_key('hello') AS c) s;

-- 10,000 encryptions of one plaintext: 10,000 distinct nonces
SELECT count(DISTINCT split_part(c, '.', 4)) AS distinct_nonces,
       count(DISTINCT c) AS distinct_ciphertexts,
       bool_and(audiotricks.at_decrypt_key(c) = 'same') AS all_decrypt
  FROM (SELECT audiotricks.at_encrypt_key('same') AS c FROM generate_series(1, 10000)) s;

-- NULL in, NULL out
SELECT audiotricks.at_encrypt_key(NULL) IS NULL AS enc_null,
       audiotricks.at_encrypt_key('x', NULL) IS NULL AS enc_null_context,
       audiotricks.at_decrypt_key(NULL) IS NULL AS dec_null;

-- every failure, with its SQLSTATE
CREATE TEMP TABLE ct AS SELECT audiotricks.at_encrypt_key('hello', 'ctx') AS c;
SELECT what, pg_temp.try(format('SELECT audiotricks.at_decrypt_key(%L, %L)', v, context)) AS result
  FROM ct, LATERAL (VALUES
    ('right context',          c, 'ctx'),
    ('wrong context',          c, 'other'),
    ('missing context',        c, ''),
    ('altered body',           overlay(c PLACING CASE WHEN substr(c, 40, 1) = 'A' THEN 'B' ELSE 'A' END FROM 40 FOR 1), 'ctx'),
    ('altered nonce',          overlay(c PLACING CASE WHEN substr(c, 25, 1) = 'A' THEN 'B' ELSE 'A' END FROM 25 FOR 1), 'ctx'),
    ('altered fingerprint',    overlay(c PLACING CASE WHEN substr(c, 7, 1) = 'A' THEN 'B' ELSE 'A' END FROM 7 FOR 1), 'ctx'),
    ('other known key id',     replace(c, 'at1.2.', 'at1.1.'), 'ctx'),
    ('unknown key id',         replace(c, 'at1.2.', 'at1.9.'), 'ctx'),
    ('key id 0',               replace(c, 'at1.2.', 'at1.0.'), 'ctx'),
    ('key id with leading 0',  replace(c, 'at1.2.', 'at1.02.'), 'ctx'),
    ('key id too large',       replace(c, 'at1.2.', 'at1.65536.'), 'ctx'),
    ('other version',          replace(c, 'at1.', 'at2.'), 'ctx'),
    ('truncated by 4 chars',   left(c, -4), 'ctx'),
    ('truncated to the tag',   left(c, 35 + 20), 'ctx'),
    ('truncated in the nonce', left(c, 30), 'ctx'),
    ('extra piece',            c || '.x', 'ctx'),
    ('padding added',          c || '=', 'ctx'),
    ('not base64url',          overlay(c PLACING '+' FROM 40 FOR 1), 'ctx'),
    ('non-ASCII in the nonce', overlay(c PLACING 'é' FROM 25 FOR 1), 'ctx'),
    ('empty',                  '', 'ctx'),
    ('garbage',                'hello', 'ctx')) t(what, v, context)
 ORDER BY what;

-- limits: 1 MB of plaintext, 1 kB of context
SELECT pg_temp.try($$SELECT audiotricks.at_encrypt_key(repeat('x', 1048576))$$) AS one_mb,
       pg_temp.try($$SELECT audiotricks.at_encrypt_key(repeat('x', 1048577))$$) AS over_one_mb,
       pg_temp.try($$SELECT audiotricks.at_encrypt_key('x', repeat('c', 1025))$$) AS long_context,
       pg_temp.try($$SELECT audiotricks.at_decrypt_key('at1.2.AAAAAAAAAAA.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA', repeat('c', 1025))$$) AS long_context_dec;

-- both AES-256-GCM implementations write the same format and read each other's
SHOW audiotricks.aes_backend;
CREATE TEMP TABLE cross_ct AS
SELECT v, audiotricks.at_encrypt_key(v, 'ctx') AS c
  FROM (VALUES (''), ('x'), ('clé-ключ-🔑'), (repeat('z', 10240))) t(v);
SET audiotricks.aes_backend = openssl;
ALTER TABLE cross_ct ADD COLUMN c_openssl text;
UPDATE cross_ct SET c_openssl = audiotricks.at_encrypt_key(v, 'ctx');
SELECT bool_and(audiotricks.at_decrypt_key(c, 'ctx') = v) AS openssl_reads_libsodium,
       bool_and(audiotricks.at_decrypt_key(c_openssl, 'ctx') = v) AS openssl_round_trip,
       bool_and(length(c) = length(c_openssl)) AS same_lengths
  FROM cross_ct;
SELECT pg_temp.try(format('SELECT audiotricks.at_decrypt_key(%L, %L)', c_openssl, 'other')) AS openssl_wrong_context
  FROM cross_ct WHERE v = 'x';
SET audiotricks.aes_backend = libsodium;
SELECT bool_and(audiotricks.at_decrypt_key(c_openssl, 'ctx') = v) AS libsodium_reads_openssl
  FROM cross_ct;
RESET audiotricks.aes_backend;
SELECT pg_temp.try($$SET audiotricks.aes_backend = 'rot13'$$) AS bad_backend;

------------------------------------------------------------------------------
-- per-user API keys
------------------------------------------------------------------------------
SELECT audiotricks.at_register('keys_a@example.com', 'keys_alice', 'Passw0rdA') IS NOT NULL AS alice;
SELECT audiotricks.at_register('keys_b@example.com', 'keys_bob', 'Passw0rdB') IS NOT NULL AS bob;
SELECT token AS alice_token FROM audiotricks.at_login('keys_alice', 'Passw0rdA') \gset
SELECT token AS bob_token FROM audiotricks.at_login('keys_bob', 'Passw0rdB') \gset

-- without an identity
SELECT pg_temp.try($$SELECT audiotricks.at_set_api_key('openai', 'sk-x')$$) AS set_anon,
       pg_temp.try($$SELECT audiotricks.at_get_api_key('openai')$$) AS get_anon;

BEGIN;
SELECT audiotricks.at_authenticate(:'alice_token') IS NOT NULL AS alice_signed_in;
SELECT audiotricks.at_get_api_key('openai') IS NULL AS none_yet;
SELECT audiotricks.at_set_api_key('openai', 'sk-alice-openai-0123456789');
SELECT audiotricks.at_set_api_key('elevenlabs', 'el-alice-ключ');
SELECT audiotricks.at_get_api_key('openai') = 'sk-alice-openai-0123456789' AS openai,
       audiotricks.at_get_api_key('elevenlabs') = 'el-alice-ключ' AS elevenlabs;
SELECT pg_temp.try($$SELECT audiotricks.at_set_api_key('anthropic', 'x')$$) AS unknown_provider,
       pg_temp.try($$SELECT audiotricks.at_get_api_key('OpenAI')$$) AS provider_is_exact,
       pg_temp.try($$SELECT audiotricks.at_get_api_key(NULL)$$) AS null_provider,
       pg_temp.try($$SELECT audiotricks.at_set_api_key('openai', repeat('k', 4097))$$) AS too_long;
COMMIT;

BEGIN;
SELECT audiotricks.at_authenticate(:'bob_token') IS NOT NULL AS bob_signed_in;
SELECT audiotricks.at_set_api_key('openai', 'sk-bob-openai');
SELECT audiotricks.at_get_api_key('openai') = 'sk-bob-openai' AS bob_openai,
       audiotricks.at_get_api_key('elevenlabs') IS NULL AS bob_no_elevenlabs;
COMMIT;

-- the table holds only ciphertext, under the current key
SELECT u.username,
       s.openai_api_key_encrypted LIKE 'at1.2.%' AS openai_encrypted,
       s.elevenlabs_api_key_encrypted LIKE 'at1.2.%' AS elevenlabs_encrypted,
       strpos(coalesce(s.openai_api_key_encrypted, '') || coalesce(s.elevenlabs_api_key_encrypted, ''), 'sk-') = 0 AS no_plaintext
  FROM audiotricks.users u JOIN audiotricks.user_settings s ON s.user_id = u.id
 WHERE u.username LIKE 'keys\_%' ORDER BY 1;

-- the raw at_decrypt_key never opens a stored key, whatever the context
SELECT pg_temp.try(format('SELECT audiotricks.at_decrypt_key(%L, %L)', s.openai_api_key_encrypted, ctx)) AS raw_decrypt_of_stored
  FROM audiotricks.users u JOIN audiotricks.user_settings s ON s.user_id = u.id,
       LATERAL (VALUES (''), ('openai'), (u.id::text || 'openai')) c(ctx)
 WHERE u.username = 'keys_alice';

-- a ciphertext copied to another user's or another provider's column fails
CREATE TEMP TABLE saved AS
SELECT s.* FROM audiotricks.user_settings s JOIN audiotricks.users u ON u.id = s.user_id
 WHERE u.username LIKE 'keys\_%';
UPDATE audiotricks.user_settings SET openai_api_key_encrypted =
       (SELECT openai_api_key_encrypted FROM saved s JOIN audiotricks.users u ON u.id = s.user_id
         WHERE u.username = 'keys_alice')
 WHERE user_id = (SELECT id FROM audiotricks.users WHERE username = 'keys_bob');
UPDATE audiotricks.user_settings SET elevenlabs_api_key_encrypted = openai_api_key_encrypted
 WHERE user_id = (SELECT id FROM audiotricks.users WHERE username = 'keys_alice');
BEGIN;
SELECT audiotricks.at_authenticate(:'bob_token') IS NOT NULL AS bob_signed_in;
SELECT pg_temp.try($$SELECT audiotricks.at_get_api_key('openai')$$) AS alices_key_in_bobs_row;
COMMIT;
BEGIN;
SELECT audiotricks.at_authenticate(:'alice_token') IS NOT NULL AS alice_signed_in;
SELECT pg_temp.try($$SELECT audiotricks.at_get_api_key('elevenlabs')$$) AS openai_key_in_elevenlabs_column,
       audiotricks.at_get_api_key('openai') = 'sk-alice-openai-0123456789' AS own_still_reads;
COMMIT;
-- put the values back
UPDATE audiotricks.user_settings s SET openai_api_key_encrypted = v.openai_api_key_encrypted,
       elevenlabs_api_key_encrypted = v.elevenlabs_api_key_encrypted
  FROM saved v WHERE v.user_id = s.user_id;

-- NULL clears
BEGIN;
SELECT audiotricks.at_authenticate(:'bob_token') IS NOT NULL AS bob_signed_in;
SELECT audiotricks.at_get_api_key('openai') = 'sk-bob-openai' AS bob_reads_again;
SELECT audiotricks.at_set_api_key('openai', NULL);
SELECT audiotricks.at_get_api_key('openai') IS NULL AS cleared;
COMMIT;
SELECT s.openai_api_key_encrypted IS NULL AS column_cleared
  FROM audiotricks.user_settings s JOIN audiotricks.users u ON u.id = s.user_id
 WHERE u.username = 'keys_bob';

-- '' clears as NULL does (column and set_at)
BEGIN;
SELECT audiotricks.at_authenticate(:'alice_token') IS NOT NULL AS alice_signed_in;
SELECT audiotricks.at_set_api_key('elevenlabs', 'el-temporary-key');
SELECT audiotricks.at_set_api_key('elevenlabs', '');
SELECT audiotricks.at_get_api_key('elevenlabs') IS NULL AS cleared_by_empty;
SELECT audiotricks.at_set_api_key('elevenlabs', 'el-alice-ключ');
COMMIT;

------------------------------------------------------------------------------
-- at_api_key_status: set or not, last 4 characters, when set; never the key
------------------------------------------------------------------------------
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_api_key_status()$$) AS status_anon;
BEGIN;
SELECT audiotricks.at_authenticate(:'alice_token') IS NOT NULL AS alice_signed_in;
SELECT provider, is_set, last4, set_at IS NOT NULL AS has_set_at,
       set_at <= now() AS set_at_not_future
  FROM audiotricks.at_api_key_status();
COMMIT;
BEGIN;
SELECT audiotricks.at_authenticate(:'bob_token') IS NOT NULL AS bob_signed_in;
SELECT provider, is_set, last4, set_at IS NULL AS no_set_at FROM audiotricks.at_api_key_status();
-- the 4 characters shown only for keys of 8 characters or more, and they
-- are characters, not bytes
SELECT audiotricks.at_set_api_key('openai', '1234567');
SELECT 7 AS chars, last4, is_set FROM audiotricks.at_api_key_status() WHERE provider = 'openai';
SELECT audiotricks.at_set_api_key('openai', '12345678');
SELECT 8 AS chars, last4, is_set FROM audiotricks.at_api_key_status() WHERE provider = 'openai';
SELECT audiotricks.at_set_api_key('openai', 'sk-ключ-鍵🔑x');
SELECT last4, octet_length(last4) AS bytes FROM audiotricks.at_api_key_status() WHERE provider = 'openai';
SELECT audiotricks.at_set_api_key('openai', NULL);
SELECT provider, is_set, last4, set_at IS NULL AS no_set_at
  FROM audiotricks.at_api_key_status() WHERE provider = 'openai';
COMMIT;
-- set_at is the time of the last at_set_api_key, NULL once cleared
SELECT u.username, s.openai_api_key_set_at IS NOT NULL AS openai_set_at,
       s.elevenlabs_api_key_set_at IS NOT NULL AS elevenlabs_set_at,
       (s.openai_api_key_encrypted IS NULL) = (s.openai_api_key_set_at IS NULL) AS openai_consistent,
       (s.elevenlabs_api_key_encrypted IS NULL) = (s.elevenlabs_api_key_set_at IS NULL) AS elevenlabs_consistent
  FROM audiotricks.users u JOIN audiotricks.user_settings s ON s.user_id = u.id
 WHERE u.username LIKE 'keys\_%' ORDER BY 1;
-- a stored value that does not decrypt fails the status as at_get_api_key does
CREATE TEMP TABLE saved2 AS SELECT s.* FROM audiotricks.user_settings s
  JOIN audiotricks.users u ON u.id = s.user_id WHERE u.username = 'keys_alice';
UPDATE audiotricks.user_settings SET elevenlabs_api_key_encrypted = openai_api_key_encrypted
 WHERE user_id = (SELECT user_id FROM saved2);
BEGIN;
SELECT audiotricks.at_authenticate(:'alice_token') IS NOT NULL AS alice_signed_in;
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_api_key_status()$$) AS status_of_misplaced_value;
COMMIT;
UPDATE audiotricks.user_settings s SET elevenlabs_api_key_encrypted = v.elevenlabs_api_key_encrypted
  FROM saved2 v WHERE v.user_id = s.user_id;
-- rotation leaves set_at alone (test/t/020_keys_rotation.pl rotates real
-- values under an old key)
UPDATE audiotricks.user_settings SET openai_api_key_set_at = '2020-01-02 03:04:05+00'
 WHERE user_id = (SELECT user_id FROM saved2);
SELECT rotated FROM audiotricks.at_rotate_api_keys();
SELECT openai_api_key_set_at = '2020-01-02 03:04:05+00' AS set_at_kept_by_rotation
  FROM audiotricks.user_settings WHERE user_id = (SELECT user_id FROM saved2);

-- rotation: everything is already under the current key
SELECT * FROM audiotricks.at_rotate_api_keys();
SELECT * FROM audiotricks.at_rotate_api_keys(NULL);
SELECT pg_temp.try($$SELECT audiotricks.at_rotate_api_keys(0)$$) AS batch_0,
       pg_temp.try($$SELECT audiotricks.at_rotate_api_keys(1000001)$$) AS batch_too_big;

------------------------------------------------------------------------------
-- an application role: its own keys only, no raw decryption, no key material
------------------------------------------------------------------------------
SELECT c AS some_ciphertext FROM ct \gset
SELECT current_setting('audiotricks.key_file') AS key_file \gset
CREATE ROLE regress_keys_app;
GRANT audiotricks_user TO regress_keys_app;
SET ROLE regress_keys_app;
SELECT pg_temp.try(format('SELECT audiotricks.at_decrypt_key(%L, %L)', :'some_ciphertext', 'ctx')) AS raw_decrypt,
       pg_temp.try($$SELECT audiotricks.at_encrypt_key('x')$$) AS raw_encrypt,
       pg_temp.try($$SELECT audiotricks.at_rotate_api_keys()$$) AS rotate;
SELECT pg_temp.try($$SELECT openai_api_key_encrypted FROM audiotricks.user_settings$$) AS read_column,
       pg_temp.try($$UPDATE audiotricks.user_settings SET elevenlabs_api_key_encrypted = NULL$$) AS write_column;
SELECT pg_temp.try($$SHOW audiotricks.key_file$$) AS show_key_file,
       pg_temp.try($$SELECT current_setting('audiotricks.key_file')$$) AS current_setting,
       pg_temp.try(format('SELECT pg_read_file(%L)', :'key_file')) AS read_file,
       pg_temp.try(format('SELECT pg_stat_file(%L)', :'key_file')) AS stat_file,
       pg_temp.try($$SET audiotricks.aes_backend = openssl$$) AS set_backend;
SELECT name FROM pg_settings WHERE name LIKE 'audiotricks.%' ORDER BY 1;
BEGIN;
SELECT audiotricks.at_authenticate(:'alice_token') IS NOT NULL AS alice_signed_in;
SELECT audiotricks.at_get_api_key('openai') = 'sk-alice-openai-0123456789' AS own_key,
       audiotricks.at_get_api_key('elevenlabs') = 'el-alice-ключ' AS own_elevenlabs;
SELECT count(*) AS visible_settings_rows FROM audiotricks.user_settings;
-- status: alice's own; the function takes no user argument, and the set_at
-- columns of other users' rows stay invisible
SELECT provider, is_set, last4 FROM audiotricks.at_api_key_status();
SELECT strpos(string_agg(row_to_json(s)::text, ','), 'sk-alice-openai-0123456789') = 0
       AND strpos(string_agg(row_to_json(s)::text, ','), 'el-alice-ключ') = 0
       AND strpos(string_agg(row_to_json(s)::text, ','), 'sk-') = 0 AS no_key_in_status
  FROM audiotricks.at_api_key_status() s;
SELECT count(*) AS other_users_set_at FROM audiotricks.user_settings s
 WHERE s.user_id <> audiotricks.at_current_user_id();
COMMIT;
BEGIN;
SELECT audiotricks.at_authenticate(:'bob_token') IS NOT NULL AS bob_signed_in;
SELECT provider, is_set, last4 FROM audiotricks.at_api_key_status();
COMMIT;
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_api_key_status()$$) AS status_without_identity;
RESET ROLE;
SELECT count(*) AS superuser_sees_key_settings FROM pg_settings
 WHERE name IN ('audiotricks.key_file', 'audiotricks.aes_backend');

-- clean up
DROP ROLE regress_keys_app;
DELETE FROM audiotricks.users WHERE username LIKE 'keys\_%';
