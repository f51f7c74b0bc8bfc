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
