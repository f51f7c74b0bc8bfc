-- Throttling per (account, client address) with a per-account ceiling,
-- account recovery and identity changes.
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
-- a login as PostgREST would run it: request.headers set for the transaction
CREATE FUNCTION pg_temp.login_from(xff text, login text, pw text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_catalog.set_config('request.headers',
    CASE WHEN xff IS NULL THEN '{}' ELSE json_build_object('x-forwarded-for', xff)::text END, true);
  RETURN pg_temp.try(format('SELECT * FROM audiotricks.at_login(%L, %L)', login, pw));
END $$;

SELECT audiotricks.at_register('rvic@example.com', 'rvic', 'Passw0rdV') IS NOT NULL AS vic;
SELECT audiotricks.at_register('rwes@example.com', 'rwes', 'Passw0rdW') IS NOT NULL AS wes;

------------------------------------------------- the header is not trusted
SHOW audiotricks.client_address_header;
-- five failures "from" 10.0.0.1: without the setting the header is ignored ...
SELECT pg_temp.login_from('10.0.0.1', 'rvic', 'wrong' || n) FROM generate_series(1, 5) n;
-- ... so they count for the connection, and a spoofed other address is refused
SELECT pg_temp.login_from('10.0.0.2', 'rvic', 'Passw0rdV') AS spoofed;
SELECT failures, throttled, window_ends > now() AS live, addresses_throttled
  FROM audiotricks.at_login_throttle_status('rvic');
SELECT audiotricks.at_clear_login_throttle('RVIC@example.com') AS cleared;
SELECT pg_temp.login_from(NULL, 'rvic', 'Passw0rdV') AS after_clear;
SELECT count(*) AS cleared_events FROM audiotricks.audit_log WHERE event = 'throttle_cleared';
SELECT audiotricks.at_clear_login_throttle('nobody') AS unknown_cleared;
SELECT count(*) AS unknown_status FROM audiotricks.at_login_throttle_status('nobody');
SELECT pg_temp.try($$SELECT audiotricks.at_clear_login_throttle(NULL)$$);
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login_throttle_status(NULL)$$);
-- not for the application roles
SELECT has_function_privilege(r, 'audiotricks.at_login_throttle_status(text)', 'EXECUTE') AS status,
       has_function_privilege(r, 'audiotricks.at_clear_login_throttle(text)', 'EXECUTE') AS clear
  FROM unnest(ARRAY['audiotricks_anon', 'audiotricks_user']) r;
SELECT pg_temp.try($$SET audiotricks.client_address_header = 'x forwarded'$$) AS bad_header_name;

------------------------------------ with the header trusted: per address
SET audiotricks.client_address_header = 'x-forwarded-for';
-- the attacker at A (first hop of the header) fails five times ...
SELECT pg_temp.login_from('10.0.0.1, 192.168.0.1', 'rvic', 'wrong' || n) FROM generate_series(1, 5) n;
-- ... and is refused even with the right password
SELECT pg_temp.login_from('10.0.0.1', 'rvic', 'Passw0rdV') AS attacker_a;
-- while the owner at B, and on the connection itself, logs in
SELECT pg_temp.login_from('10.0.0.2', 'rvic', 'Passw0rdV') AS owner_b;
SELECT pg_temp.login_from(NULL, 'rvic', 'Passw0rdV') AS owner_local;
-- IPv6 and a garbage first hop (counted as the connection: not refused)
SELECT pg_temp.login_from('2001:db8::1', 'rvic', 'Passw0rdV') AS ipv6;
SELECT pg_temp.login_from('not-an-address, 10.0.0.1', 'rvic', 'Passw0rdV') AS garbage;
SELECT pg_temp.login_from('10.0.0.1:443', 'rvic', 'Passw0rdV') AS with_port;
-- a session-level request.headers is ignored: counted as the connection
SET request.headers = '{"x-forwarded-for": "10.0.0.1"}';
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('rvic', 'Passw0rdV')$$) AS session_level;
RESET request.headers;
SELECT failures, throttled, addresses_throttled FROM audiotricks.at_login_throttle_status('rvic');
-- just inside the per-address limit: four failures, then the right password
SELECT pg_temp.login_from('10.0.0.3', 'rvic', 'wrong' || n) FROM generate_series(1, 4) n;
SELECT pg_temp.login_from('10.0.0.3', 'rvic', 'Passw0rdV') AS four_then_right;
-- another account at A is not affected
SELECT pg_temp.login_from('10.0.0.1', 'rwes', 'Passw0rdW') AS other_account;
SELECT audiotricks.at_clear_login_throttle('rvic') AS cleared;
SELECT pg_temp.login_from('10.0.0.1', 'rvic', 'Passw0rdV') AS attacker_a_after_clear;

------------------------------------------ the per-account ceiling (100)
-- 99 failures from 20 addresses (at most 5 from each): just inside
SELECT count(*) FILTER (WHERE r LIKE '28P01%') AS refused
  FROM (SELECT pg_temp.login_from('10.1.0.' || (n / 5), 'rvic', 'wrong' || n) r
          FROM generate_series(0, 98) n) s;
SELECT failures, throttled, addresses_throttled FROM audiotricks.at_login_throttle_status('rvic');
SELECT pg_temp.login_from('10.2.0.1', 'rvic', 'Passw0rdV') AS at_99;
-- the hundredth failure from yet another address trips the ceiling
SELECT pg_temp.login_from('10.1.0.19', 'rvic', 'wrong100');
SELECT failures, throttled FROM audiotricks.at_login_throttle_status('rvic');
SELECT pg_temp.login_from('10.2.0.2', 'rvic', 'Passw0rdV') AS at_100_new_address;
SELECT pg_temp.login_from(NULL, 'rvic', 'Passw0rdV') AS at_100_owner;
SELECT audiotricks.at_clear_login_throttle('rvic') AS cleared;
SELECT pg_temp.login_from('10.2.0.2', 'rvic', 'Passw0rdV') AS after_clear;
SELECT count(*) > 0 AS throttled_events FROM audiotricks.audit_log
 WHERE event = 'login_throttled' AND user_id = (SELECT id FROM audiotricks.users WHERE username = 'rvic');
RESET audiotricks.client_address_header;

------------------------------------------------------------ password reset
SELECT audiotricks.at_register('rxa@example.com', 'rxa', 'Passw0rdX') IS NOT NULL AS rxa;
SELECT id AS rxa_id FROM audiotricks.users WHERE username = 'rxa' \gset
-- anonymous callers get the same (nothing) for a known and an unknown login
SET ROLE audiotricks_anon;
SELECT audiotricks.at_request_password_reset('RXA') AS known,
       audiotricks.at_request_password_reset('nobody@example.com') AS unknown,
       audiotricks.at_request_password_reset(NULL) AS null_login;
-- and can read no token, no outbox, and not take mail
SELECT pg_temp.try('SELECT * FROM audiotricks.account_tokens') AS tokens,
       pg_temp.try('SELECT * FROM audiotricks.mail_outbox') AS outbox,
       pg_temp.try('SELECT * FROM audiotricks.at_mail_outbox()') AS take;
RESET ROLE;
SET ROLE audiotricks_user;
SELECT pg_temp.try('SELECT * FROM audiotricks.account_tokens') AS tokens,
       pg_temp.try('SELECT * FROM audiotricks.mail_outbox') AS outbox,
       pg_temp.try('SELECT * FROM audiotricks.at_mail_outbox()') AS take,
       pg_temp.try('SELECT audiotricks.at_purge_expired_tokens()') AS purge;
RESET ROLE;
-- only hashes are stored; the two decoys name no user
CREATE VIEW pg_temp.decoys AS SELECT t.* FROM audiotricks.account_tokens t
 WHERE NOT EXISTS (SELECT FROM audiotricks.users u WHERE u.id = t.user_id);
SELECT count(*) FILTER (WHERE user_id = :'rxa_id') AS rxa_tokens,
       (SELECT count(*) FROM pg_temp.decoys) AS decoys,
       bool_and(token_hash ~ '^[0-9a-f]{64}$') AS hashes
  FROM audiotricks.account_tokens;
SELECT kind, recipient IS NULL AS no_recipient, token_sealed LIKE 'at1.%' AS sealed
  FROM audiotricks.mail_outbox ORDER BY id;
-- the mailer takes one mail (the decoys are dropped, never returned)
SET ROLE audiotricks_mailer;
SELECT recipient, kind, length(token) AS token_len FROM audiotricks.at_mail_outbox();
SELECT count(*) AS left_over FROM audiotricks.at_mail_outbox();
SELECT pg_temp.try('SELECT * FROM audiotricks.account_tokens') AS mailer_tokens;
SELECT pg_temp.try('SELECT audiotricks.at_reset_password(''x'', ''Passw0rdZ'')') AS mailer_reset;
RESET ROLE;
SELECT count(*) AS outbox_empty FROM audiotricks.mail_outbox;
-- the sealed token opens only as a mail's token (not as an API key or raw value)
SELECT audiotricks.at_request_password_reset('rxa');
SELECT pg_temp.try(format('SELECT audiotricks.at_decrypt_key(%L)', token_sealed)) AS raw_decrypt
  FROM audiotricks.mail_outbox;
SET ROLE audiotricks_mailer;
SELECT token AS t1 FROM audiotricks.at_mail_outbox() \gset
RESET ROLE;
-- a newer request replaces it
SELECT audiotricks.at_request_password_reset('rxa@example.com');
SET ROLE audiotricks_mailer;
SELECT token AS t2 FROM audiotricks.at_mail_outbox() \gset
RESET ROLE;
SELECT :'t1' <> :'t2' AS different, :'t2' ~ '^[A-Za-z0-9_-]{43}$' AS base64url;
SET ROLE audiotricks_anon;
SELECT pg_temp.try(format('SELECT audiotricks.at_reset_password(%L, %L)', :'t1', 'NewPassw0rd')) AS replaced;
RESET ROLE;
-- the rules apply to the new password, before the token is looked at
SELECT pg_temp.try(format('SELECT audiotricks.at_reset_password(%L, %L)', :'t2', 'short')) AS weak;
SELECT pg_temp.try(format('SELECT audiotricks.at_reset_password(%L, NULL)', :'t2')) AS null_password;
SELECT pg_temp.try($$SELECT audiotricks.at_reset_password(NULL, 'NewPassw0rd')$$) AS null_token;
SELECT pg_temp.try(format('SELECT audiotricks.at_reset_password(%L, %L)', :'t2' || 'A', 'NewPassw0rd')) AS token_44;
SELECT pg_temp.try(format('SELECT audiotricks.at_reset_password(%L, %L)', left(:'t2', 42), 'NewPassw0rd')) AS token_42;
-- two sessions, then the reset ends both
SELECT count(*) FROM audiotricks.at_login('rxa', 'Passw0rdX');
SELECT count(*) FROM audiotricks.at_login('rxa@example.com', 'Passw0rdX');
SELECT count(*) AS sessions_before FROM audiotricks.sessions WHERE user_id = :'rxa_id';
SET ROLE audiotricks_anon;
SELECT pg_temp.try(format('SELECT audiotricks.at_reset_password(%L, %L)', :'t2', 'NewPassw0rd')) AS reset;
-- single use
SELECT pg_temp.try(format('SELECT audiotricks.at_reset_password(%L, %L)', :'t2', 'OtherPassw0rd')) AS reused;
RESET ROLE;
SELECT count(*) AS sessions_after FROM audiotricks.sessions WHERE user_id = :'rxa_id';
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('rxa', 'Passw0rdX')$$) AS old_password;
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('rxa', 'NewPassw0rd')$$) AS new_password;
-- expiry: just outside
SELECT audiotricks.at_request_password_reset('rxa');
SET ROLE audiotricks_mailer;
SELECT token AS t3 FROM audiotricks.at_mail_outbox() \gset
RESET ROLE;
UPDATE audiotricks.account_tokens SET expires_at = now() WHERE user_id = :'rxa_id';
SELECT pg_temp.try(format('SELECT audiotricks.at_reset_password(%L, %L)', :'t3', 'NewPassw0rd3')) AS expired;
-- a reset of an inactive account is refused
SELECT audiotricks.at_request_password_reset('rxa');
SET ROLE audiotricks_mailer;
SELECT token AS t4 FROM audiotricks.at_mail_outbox() \gset
RESET ROLE;
UPDATE audiotricks.users SET is_active = false WHERE id = :'rxa_id';
SELECT pg_temp.try(format('SELECT audiotricks.at_reset_password(%L, %L)', :'t4', 'NewPassw0rd4')) AS inactive;
SELECT audiotricks.at_request_password_reset('rxa');
SELECT count(*) FILTER (WHERE kind = 'none') AS inactive_gets_decoy, count(*) AS all_mails FROM audiotricks.mail_outbox;
DELETE FROM audiotricks.mail_outbox;
UPDATE audiotricks.users SET is_active = true WHERE id = :'rxa_id';
SELECT event, count(*) FROM audiotricks.audit_log
 WHERE user_id = :'rxa_id' AND event LIKE 'password_reset%' GROUP BY event ORDER BY event;
SELECT count(*) AS unknown_requests FROM audiotricks.audit_log
 WHERE user_id IS NULL AND event = 'password_reset_requested';
-- at most max_reset_requests (3) mails per account and window
SELECT audiotricks.at_register('ryb@example.com', 'ryb', 'Passw0rdY') IS NOT NULL AS ryb;
SELECT audiotricks.at_request_password_reset('ryb') FROM generate_series(1, 3);
SELECT count(*) AS three_mails FROM audiotricks.mail_outbox WHERE kind = 'password_reset';
SELECT audiotricks.at_request_password_reset('ryb');
SELECT count(*) FILTER (WHERE kind = 'password_reset') AS still_three,
       count(*) FILTER (WHERE kind = 'none') AS decoy FROM audiotricks.mail_outbox;
-- the outbox batch size
SET ROLE audiotricks_mailer;
SELECT pg_temp.try('SELECT * FROM audiotricks.at_mail_outbox(0)') AS zero,
       pg_temp.try('SELECT * FROM audiotricks.at_mail_outbox(1001)') AS too_many,
       pg_temp.try('SELECT * FROM audiotricks.at_mail_outbox(NULL)') AS null_batch;
SELECT count(*) AS one FROM audiotricks.at_mail_outbox(1);
SELECT count(*) AS the_rest FROM audiotricks.at_mail_outbox(1000);
RESET ROLE;
-- reset_ttl: 60 s to 7 days
SELECT pg_temp.try('SET audiotricks.reset_ttl = 59') AS ttl_59;
SET audiotricks.reset_ttl = 60;
SELECT audiotricks.at_request_password_reset('nobody-else');
SELECT expires_at - created_at AS ttl FROM audiotricks.account_tokens ORDER BY id DESC LIMIT 1;
RESET audiotricks.reset_ttl;
UPDATE audiotricks.account_tokens SET expires_at = now() WHERE id IN (SELECT id FROM pg_temp.decoys);
SELECT audiotricks.at_purge_expired_tokens() > 0 AS purged;
SELECT count(*) AS decoys_left FROM pg_temp.decoys;
DELETE FROM audiotricks.mail_outbox;
