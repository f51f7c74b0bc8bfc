-- Email verification, email change, username change, and registration that
-- reveals no accounts (src/recovery.c, src/accounts.c).
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
-- the error with its detail (what at_login tells whoever had the password)
CREATE FUNCTION pg_temp.try_detail(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN SQLSTATE || ' ' || SQLERRM || coalesce(' / ' || nullif(d, ''), '');
END $$;
-- stmt as the user of token, in a transaction of its own
CREATE FUNCTION pg_temp.as_user(token text, stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM audiotricks.at_authenticate(token);
  RETURN pg_temp.try(stmt);
END $$;
-- what the mailer takes: kind, recipient, whether it carries a token
CREATE FUNCTION pg_temp.mails() RETURNS TABLE(kind text, recipient text, has_token boolean)
LANGUAGE sql AS $$
  SELECT kind, recipient, token IS NOT NULL FROM audiotricks.at_mail_outbox() ORDER BY id
$$;
CREATE FUNCTION pg_temp.last_token() RETURNS text LANGUAGE sql AS $$
  SELECT token FROM audiotricks.at_mail_outbox() ORDER BY id DESC LIMIT 1
$$;
DELETE FROM audiotricks.mail_outbox;

SELECT audiotricks.at_register('ia@example.com', 'ia', 'Passw0rdA') IS NOT NULL AS ia;
SELECT audiotricks.at_register('ib@example.com', 'ib', 'Passw0rdB') IS NOT NULL AS ib;
SELECT id AS ia_id FROM audiotricks.users WHERE username = 'ia' \gset
SELECT token AS ia_tok FROM audiotricks.at_login('ia', 'Passw0rdA') \gset
SELECT token AS ib_tok FROM audiotricks.at_login('ib', 'Passw0rdB') \gset

---------------------------------------------------------- email verification
SELECT email_verified_at IS NULL AS unverified FROM audiotricks.users WHERE id = :'ia_id';
SELECT pg_temp.try('SELECT audiotricks.at_request_email_verification()') AS no_identity;
SELECT pg_temp.as_user(:'ia_tok', 'SELECT audiotricks.at_request_email_verification()') AS v1;
SELECT * FROM pg_temp.mails();
SELECT pg_temp.as_user(:'ia_tok', 'SELECT audiotricks.at_request_email_verification()') AS v1;
SELECT pg_temp.last_token() AS v1 \gset
-- a newer request replaces it
SELECT pg_temp.as_user(:'ia_tok', 'SELECT audiotricks.at_request_email_verification()') AS v2;
SELECT pg_temp.last_token() AS v2 \gset
SET ROLE audiotricks_anon;
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'v1')) AS replaced;
SELECT pg_temp.try('SELECT audiotricks.at_verify_email(NULL)') AS null_token,
       pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', left(:'v2', 42))) AS token_42,
       pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'v2' || 'A')) AS token_44;
-- a reset token is no verification token
SELECT pg_temp.try(format('SELECT audiotricks.at_reset_password(%L, %L)', :'v2', 'Passw0rdA2')) AS as_reset;
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'v2')) AS verified;
-- single use
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'v2')) AS reused;
RESET ROLE;
SELECT email_verified_at IS NOT NULL AS verified FROM audiotricks.users WHERE id = :'ia_id';
-- verified already: nothing is mailed
SELECT pg_temp.as_user(:'ia_tok', 'SELECT audiotricks.at_request_email_verification()') AS again;
SELECT count(*) AS no_mail FROM audiotricks.mail_outbox;
-- expiry: just inside, then just outside
SELECT audiotricks.at_register('ic@example.com', 'ic', 'Passw0rdC') IS NOT NULL AS ic;
SELECT id AS ic_id FROM audiotricks.users WHERE username = 'ic' \gset
SELECT token AS ic_tok FROM audiotricks.at_login('ic', 'Passw0rdC') \gset
SELECT pg_temp.as_user(:'ic_tok', 'SELECT audiotricks.at_request_email_verification()') AS v3;
SELECT pg_temp.last_token() AS v3 \gset
UPDATE audiotricks.account_tokens SET expires_at = now() WHERE user_id = :'ic_id';
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'v3')) AS expired;
UPDATE audiotricks.account_tokens SET expires_at = clock_timestamp() + interval '1 minute' WHERE user_id = :'ic_id';
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'v3')) AS just_inside;
-- at most max_reset_requests (3) mails per window
SELECT audiotricks.at_register('id@example.com', 'id_', 'Passw0rdD') IS NOT NULL AS id_;
SELECT token AS id_tok FROM audiotricks.at_login('id_', 'Passw0rdD') \gset
SELECT pg_temp.as_user(:'id_tok', 'SELECT audiotricks.at_request_email_verification()') FROM generate_series(1, 4);
SELECT count(*) AS three_mails FROM pg_temp.mails();
SELECT event, count(*) FROM audiotricks.audit_log
 WHERE event LIKE 'email_verif%' GROUP BY event ORDER BY event;

---------------------------------------------------------------- email change
SELECT pg_temp.try($$SELECT audiotricks.at_change_email('Passw0rdA', 'ia2@example.com')$$) AS no_identity;
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_email('wrong', 'ia2@example.com')$$) AS wrong_password;
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_email('Passw0rdA', 'not-an-address')$$) AS invalid;
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_email('Passw0rdA', NULL)$$) AS null_email;
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_email('Passw0rdA', 'IA@example.com')$$) AS same;
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_email('Passw0rdA', 'IB@example.com')$$) AS taken;
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_email('Passw0rdA', 'ia2@example.com')$$) AS requested;
SELECT * FROM pg_temp.mails();
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_email('Passw0rdA', 'ia2@example.com')$$) AS requested;
SELECT pg_temp.last_token() AS c1 \gset
-- until verified the old address stays, and logs in; the new one does not
SELECT email, email_verified_at IS NOT NULL AS verified FROM audiotricks.users WHERE id = :'ia_id';
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('ia@example.com', 'Passw0rdA')$$) AS old_address;
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('ia2@example.com', 'Passw0rdA')$$) AS new_address;
-- the pending change reserves the new address
SELECT pg_temp.try($$SELECT audiotricks.at_register('IA2@example.com', 'other', 'Passw0rdO')$$) AS register_reserved;
SELECT pg_temp.as_user(:'ib_tok', $$SELECT audiotricks.at_change_email('Passw0rdB', 'ia2@example.com')$$) AS change_reserved;
-- ... but not once it expired (just outside)
UPDATE audiotricks.account_tokens SET expires_at = now() WHERE user_id = :'ia_id' AND purpose = 'email_change';
SELECT pg_temp.try($$SELECT audiotricks.at_register('ia2@example.com', 'other', 'Passw0rdO')$$) AS register_after_expiry;
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'c1')) AS expired;
DELETE FROM audiotricks.users WHERE username = 'other';
-- a newer request replaces the pending one
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_email('Passw0rdA', 'ia3@example.com')$$) AS c2;
SELECT pg_temp.last_token() AS c2 \gset
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_email('Passw0rdA', 'ia4@example.com')$$) AS c3;
SELECT pg_temp.last_token() AS c3 \gset
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'c2')) AS replaced;
SELECT pg_temp.try($$SELECT audiotricks.at_register('ia3@example.com', 'other', 'Passw0rdO')$$) AS old_pending_released;
DELETE FROM audiotricks.users WHERE username = 'other';
SET ROLE audiotricks_anon;
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'c3')) AS changed;
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'c3')) AS reused;
RESET ROLE;
SELECT email, email_verified_at IS NOT NULL AS verified FROM audiotricks.users WHERE id = :'ia_id';
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('ia@example.com', 'Passw0rdA')$$) AS old_address;
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('IA4@example.com', 'Passw0rdA')$$) AS new_address;
-- the change fails if the address was taken meanwhile (here: by hand)
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_email('Passw0rdA', 'ia5@example.com')$$) AS c4;
SELECT pg_temp.last_token() AS c4 \gset
UPDATE audiotricks.users SET email = 'IA5@example.com' WHERE username = 'ib';
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'c4')) AS taken_meanwhile;
UPDATE audiotricks.users SET email = 'ib@example.com' WHERE username = 'ib';
-- a verification token of an address the account no longer has is dead
UPDATE audiotricks.users SET email_verified_at = NULL WHERE id = :'ic_id';
SELECT pg_temp.as_user(:'ic_tok', 'SELECT audiotricks.at_request_email_verification()') AS v4;
SELECT pg_temp.last_token() AS v4 \gset
SELECT pg_temp.as_user(:'ic_tok', $$SELECT audiotricks.at_change_email('Passw0rdC', 'ic2@example.com')$$) AS c5;
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', pg_temp.last_token())) AS changed;
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'v4')) AS stale;
-- deleting the account deletes its tokens
SELECT pg_temp.as_user(:'ic_tok', $$SELECT audiotricks.at_change_email('Passw0rdC', 'ic3@example.com')$$) AS c6;
SELECT count(*) AS ic_tokens FROM audiotricks.account_tokens WHERE user_id = :'ic_id';
SELECT token AS ic_tok FROM audiotricks.at_login('ic2@example.com', 'Passw0rdC') \gset
SELECT pg_temp.as_user(:'ic_tok', $$SELECT audiotricks.at_delete_account('Passw0rdC')$$) AS deleted;
SELECT count(*) AS ic_tokens FROM audiotricks.account_tokens WHERE user_id = :'ic_id';
DELETE FROM audiotricks.mail_outbox;
SELECT event, count(*) FROM audiotricks.audit_log
 WHERE event LIKE 'email_change%' AND user_id = :'ia_id' GROUP BY event ORDER BY event;

------------------------------------------------------ unverified logins
SELECT audiotricks.at_register('ie@example.com', 'ie', 'Passw0rdE') IS NOT NULL AS ie;
SET audiotricks.allow_unverified_login = off;
-- the detail only for whoever had the password
SELECT pg_temp.try_detail($$SELECT * FROM audiotricks.at_login('ie', 'Passw0rdE')$$) AS right_password;
SELECT pg_temp.try_detail($$SELECT * FROM audiotricks.at_login('ie', 'Wrong0rdE')$$) AS wrong_password;
SELECT pg_temp.try_detail($$SELECT * FROM audiotricks.at_login('nobody', 'Passw0rdE')$$) AS unknown;
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('ia', 'Passw0rdA')$$) AS verified;
-- not counted as failures: more than max_failed_logins (5) in a row
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('ie', 'Passw0rdE')$$) FROM generate_series(1, 6);
-- a password reset verifies the address it was mailed to
SELECT audiotricks.at_request_password_reset('ie');
SELECT pg_temp.try(format('SELECT audiotricks.at_reset_password(%L, %L)', pg_temp.last_token(), 'Passw0rdE2')) AS reset;
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('ie', 'Passw0rdE2')$$) AS after_reset;
RESET audiotricks.allow_unverified_login;
-- the event goes through the detached audit writer: wait for it (20 s at most)
DO $$
BEGIN
  FOR i IN 1..200 LOOP
    EXIT WHEN EXISTS (SELECT FROM audiotricks.audit_log WHERE event = 'login_unverified');
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT count(*) > 0 AS unverified_events FROM audiotricks.audit_log WHERE event = 'login_unverified';

------------------------------------------------------------ username change
SELECT pg_temp.try($$SELECT audiotricks.at_change_username('Passw0rdA', 'ia_new')$$) AS no_identity;
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_username('wrong', 'ia_new')$$) AS wrong_password;
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_username('Passw0rdA', 'has space')$$) AS invalid;
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_username('Passw0rdA', NULL)$$) AS null_name;
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_username('Passw0rdA', 'IB')$$) AS taken;
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_username('Passw0rdA', 'IA')$$) AS own_case;
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_username('Passw0rdA', 'ia_new')$$) AS changed;
SELECT username FROM audiotricks.users WHERE id = :'ia_id';
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('IA_NEW', 'Passw0rdA')$$) AS new_name;
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('ia', 'Passw0rdA')$$) AS old_name;
SELECT count(*) AS username_events FROM audiotricks.audit_log
 WHERE event = 'username_changed' AND user_id = :'ia_id';
-- the re-check is throttled like at_change_password's: 5 wrong, then refused
SELECT pg_temp.as_user(:'ib_tok', format($$SELECT audiotricks.at_change_username('wrong%s', 'ib2')$$, n))
  FROM generate_series(1, 5) n;
SELECT pg_temp.as_user(:'ib_tok', $$SELECT audiotricks.at_change_username('Passw0rdB', 'ib2')$$) AS throttled;
SELECT audiotricks.at_clear_login_throttle('ib') AS cleared;
SELECT pg_temp.as_user(:'ib_tok', $$SELECT audiotricks.at_change_username('Passw0rdB', 'ib')$$) AS after_clear;

------------------------------------- registration that reveals no account
-- verification off: a taken or reserved address is refused
SELECT pg_temp.try($$SELECT audiotricks.at_register('IB@example.com', 'fresh1', 'Passw0rdF')$$) AS taken_off;
SET audiotricks.require_email_verification = on;
-- no account until the address is verified; a taken address answers alike:
-- a UUIDv7 either way, and neither names a user yet
SELECT audiotricks.at_register('IB@example.com', 'fresh1', 'Passw0rdF') AS fake \gset
SELECT audiotricks.at_register('new1@example.com', 'fresh2', 'Passw0rdF') AS real \gset
SELECT substr(:'fake', 15, 1) AS fake_version, substr(:'real', 15, 1) AS real_version,
       EXISTS (SELECT FROM audiotricks.users WHERE id IN (:'fake', :'real')) AS names_user,
       EXISTS (SELECT FROM audiotricks.users WHERE username IN ('fresh1', 'fresh2')) AS created;
-- the owner of the address gets a notice (no token), the new address a token
SELECT * FROM pg_temp.mails();
SELECT count(*) FILTER (WHERE user_id IS NULL) AS notice_no_user,
       count(*) FILTER (WHERE user_id = (SELECT id FROM audiotricks.users WHERE username = 'ib')) AS about_ib
  FROM audiotricks.audit_log WHERE event = 'registration_for_existing_email';
-- the pending account cannot log in; a newer registration of the address
-- replaces the pending one; its token creates the account, verified, with
-- the id at_register answered
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('fresh2', 'Passw0rdF')$$) AS pending_login;
SELECT audiotricks.at_register('new1@example.com', 'fresh2', 'Passw0rdF') AS real2 \gset
SELECT pg_temp.last_token() AS r1 \gset
SELECT audiotricks.at_register('NEW1@example.com', 'fresh2b', 'Passw0rdF2') AS real3 \gset
SELECT pg_temp.last_token() AS r2 \gset
SELECT :'real' = :'real2' AND :'real2' = :'real3' AS same_pending_id;
SET ROLE audiotricks_anon;
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'r1')) AS replaced;
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'r2')) AS created;
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'r2')) AS reused;
RESET ROLE;
SELECT id = :'real' AS answered_id, email, username, email_verified_at IS NOT NULL AS verified
  FROM audiotricks.users WHERE lower(email) = 'new1@example.com';
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('fresh2b', 'Passw0rdF2')$$) AS login;
SELECT event, count(*) FROM audiotricks.audit_log
 WHERE user_id = :'real' GROUP BY event ORDER BY event;
-- a username taken before the token is used: 23505 then
SELECT audiotricks.at_register('new5@example.com', 'fresh5', 'Passw0rdF') IS NOT NULL AS pending5;
SELECT pg_temp.last_token() AS r5 \gset
RESET audiotricks.require_email_verification;
SELECT audiotricks.at_register('other5@example.com', 'FRESH5', 'Passw0rdF') IS NOT NULL AS took_name;
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'r5')) AS name_taken;
-- ... and an address taken before the token is used
SET audiotricks.require_email_verification = on;
SELECT audiotricks.at_register('new6@example.com', 'fresh6', 'Passw0rdF') IS NOT NULL AS pending6;
SELECT pg_temp.last_token() AS r6 \gset
RESET audiotricks.require_email_verification;
SELECT audiotricks.at_register('NEW6@example.com', 'other6', 'Passw0rdF') IS NOT NULL AS took_address;
SELECT pg_temp.try(format('SELECT audiotricks.at_verify_email(%L)', :'r6')) AS address_taken;
SET audiotricks.require_email_verification = on;
-- a taken username is refused, whatever the email
SELECT pg_temp.try($$SELECT audiotricks.at_register('ib@example.com', 'IA_new', 'Passw0rdF')$$) AS taken_name_existing_email,
       pg_temp.try($$SELECT audiotricks.at_register('new2@example.com', 'ia_NEW', 'Passw0rdF')$$) AS taken_name_new_email;
-- a reserved address answers like a new one too (a decoy mail, nothing sent)
SELECT pg_temp.as_user(:'ib_tok', $$SELECT audiotricks.at_change_email('Passw0rdB', 'ib9@example.com')$$) AS reserve;
DELETE FROM audiotricks.mail_outbox;
SELECT pg_temp.try($$SELECT audiotricks.at_register('ib9@example.com', 'fresh3', 'Passw0rdF')$$) AS reserved;
SELECT count(*) AS nothing_sent FROM pg_temp.mails();
-- and at_change_email to a taken address answers like a free one
SELECT pg_temp.as_user(:'ia_tok', $$SELECT audiotricks.at_change_email('Passw0rdA', 'ib@example.com')$$) AS taken_quiet;
SELECT count(*) AS nothing_sent FROM pg_temp.mails();
RESET audiotricks.require_email_verification;

--------------------------------- the per-address registration throttle
-- counted per client address (here the first hop of x-forwarded-for, a
-- random one so that a rerun within the window starts afresh)
SET audiotricks.client_address_header = 'x-forwarded-for';
SELECT '10.' || (random() * 255)::int || '.' || (random() * 255)::int || '.' || (random() * 255)::int AS addr \gset
CREATE FUNCTION pg_temp.register_from(addr text, n int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_catalog.set_config('request.headers', json_build_object('x-forwarded-for', addr)::text, true);
  RETURN pg_temp.try(format($q$SELECT audiotricks.at_register('thr%s@example.com', 'thr%s', 'Passw0rdT')$q$, n, n));
END $$;
SET audiotricks.max_registrations_per_address = 3;
-- three (just inside), then the fourth is refused before any hashing
SELECT n, pg_temp.register_from(:'addr', n) FROM generate_series(1, 4) n;
-- a refused attempt is not counted: a limit of 4 lets one more through
SET audiotricks.max_registrations_per_address = 4;
SELECT pg_temp.register_from(:'addr', 5) AS fourth, pg_temp.register_from(:'addr', 6) AS fifth;
-- another address is not affected
SELECT pg_temp.register_from(:'addr' || '0', 7) AS other_address;
-- invalid input is refused before it is counted
SELECT pg_temp.try($$SELECT audiotricks.at_register('bad', 'thr8', 'Passw0rdT')$$) AS invalid;
SELECT pg_temp.try('SET audiotricks.max_registrations_per_address = -1') AS negative;
RESET audiotricks.max_registrations_per_address;
SELECT pg_temp.register_from(:'addr', 8) AS unlimited;
RESET audiotricks.client_address_header;
-- not settable by application roles
SET ROLE audiotricks_user;
SELECT pg_temp.try('SET audiotricks.max_registrations_per_address = 0') AS as_user,
       pg_temp.try('SET audiotricks.require_email_verification = off') AS as_user,
       pg_temp.try('SET audiotricks.allow_unverified_login = on') AS as_user;
RESET ROLE;

-------------------------------------------------------------- privileges
SELECT p.oid::regprocedure AS function,
       has_function_privilege('audiotricks_anon', p.oid, 'EXECUTE') AS anon,
       has_function_privilege('audiotricks_user', p.oid, 'EXECUTE') AS "user",
       has_function_privilege('audiotricks_mailer', p.oid, 'EXECUTE') AS mailer
  FROM pg_proc p
 WHERE p.proname IN ('at_request_email_verification', 'at_verify_email', 'at_change_email', 'at_change_username')
 ORDER BY p.oid::regprocedure::text;
DELETE FROM audiotricks.mail_outbox;
