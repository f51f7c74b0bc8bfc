-- Account security beyond the seed: throttling, audit trail, session
-- management (list, end one, refresh with reuse detection), deactivation and
-- deletion.
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
-- wait (at most 20 s) until a query about the audit log is true
CREATE FUNCTION pg_temp.wait_until(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE ok boolean;
BEGIN
  FOR i IN 1..200 LOOP
    EXECUTE q INTO ok;
    IF ok THEN
      RETURN true;
    END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
  RETURN false;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text) TO PUBLIC;

SELECT audiotricks.at_register('tom@example.com', 'tom', 'Passw0rdT') IS NOT NULL AS tom;
SELECT audiotricks.at_register('uma@example.com', 'uma', 'Passw0rdU') IS NOT NULL AS uma;
SELECT id AS tom_id FROM audiotricks.users WHERE username = 'tom' \gset
SELECT id AS uma_id FROM audiotricks.users WHERE username = 'uma' \gset

------------------------------------------------------------------ throttling
-- five failures (by username and by email: the account is what counts) ...
SELECT pg_temp.try(format('SELECT * FROM audiotricks.at_login(%L, %L)', l, 'wrong' || n))
  FROM (VALUES ('tom', 1), ('TOM', 2), ('tom@example.com', 3), ('Tom@Example.com', 4), ('tom', 5)) v(l, n);
-- ... and the right password is refused too, with the same error
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('tom', 'Passw0rdT')$$) AS throttled;
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('tom@example.com', 'Passw0rdT')$$) AS throttled_by_email;
-- another account is not affected
SELECT count(*) AS uma_logs_in FROM audiotricks.at_login('uma', 'Passw0rdU');
-- a success resets the count: four failures, a success, four more, a success
SELECT pg_temp.try(format('SELECT * FROM audiotricks.at_login(%L, %L)', 'uma', 'wrong' || n)) FROM generate_series(1, 4) n;
SELECT count(*) AS uma_after_4 FROM audiotricks.at_login('uma', 'Passw0rdU');
SELECT pg_temp.try(format('SELECT * FROM audiotricks.at_login(%L, %L)', 'uma', 'wrong' || n)) FROM generate_series(1, 4) n;
SELECT count(*) AS uma_after_4_more FROM audiotricks.at_login('uma', 'Passw0rdU');
-- unknown logins are counted and throttled the same way (no enumeration)
SELECT pg_temp.try(format('SELECT * FROM audiotricks.at_login(%L, %L)', 'ghost', 'wrong' || n)) FROM generate_series(1, 6) n;

------------------------------------------------------------------ audit (detached events)
-- failed and throttled logins are recorded although their calls failed
SELECT pg_temp.wait_until(format(
         $$SELECT count(*) = 13 FROM audiotricks.audit_log WHERE event = 'login_failed' AND user_id IN (%L, %L)$$,
         :'tom_id', :'uma_id')) AS failures_recorded,
       pg_temp.wait_until(format(
         $$SELECT count(*) = 2 FROM audiotricks.audit_log WHERE event = 'login_throttled' AND user_id = %L$$,
         :'tom_id')) AS throttles_recorded;
SELECT event, count(*) FILTER (WHERE user_id = :'tom_id') AS tom,
       count(*) FILTER (WHERE user_id = :'uma_id') AS uma
  FROM audiotricks.audit_log WHERE user_id IN (:'tom_id', :'uma_id') GROUP BY event ORDER BY event;
-- no secret of any kind is in the log
SELECT count(*) AS secrets_in_log FROM audiotricks.audit_log
 WHERE (audit_log.*)::text ~* '(Passw0rd|wrong[0-9]|eyJhbGci)';

------------------------------------------------------------------ sessions
CREATE ROLE regress_sec LOGIN;
GRANT audiotricks_user TO regress_sec;
SELECT audiotricks.at_register('vic@example.com', 'vic', 'Passw0rdV') IS NOT NULL AS vic;
SELECT token AS v, session_id AS v_sid FROM audiotricks.at_login('vic', 'Passw0rdV') \gset
SELECT token AS u1 FROM audiotricks.at_login('uma', 'Passw0rdU') \gset
SELECT token AS u2, session_id AS u2_sid FROM audiotricks.at_login('uma', 'Passw0rdU') \gset
SET ROLE regress_sec;
SELECT pg_temp.try('SELECT * FROM audiotricks.at_list_sessions()') AS without_identity;
BEGIN;
SELECT audiotricks.at_authenticate(:'u1') IS NOT NULL;
SELECT count(*) AS live_sessions, count(*) FILTER (WHERE is_current) AS current
  FROM audiotricks.at_list_sessions();
-- end another of one's sessions; someone else's cannot be ended
SELECT audiotricks.at_logout_session(:'u2_sid') AS ended_u2;
SELECT audiotricks.at_logout_session(:'u2_sid') AS ended_u2_again;
SELECT audiotricks.at_logout_session(:'v_sid') AS ended_someone_elses;
COMMIT;
RESET ROLE;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', :'v')) AS vic_still_logged_in;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', :'u2')) AS u2_after_logout_session;
BEGIN;
SELECT audiotricks.at_authenticate(:'u1') IS NOT NULL;
SELECT count(*) AS after_logout_session FROM audiotricks.at_list_sessions();
SELECT pg_temp.try(format('SELECT audiotricks.at_logout_session(%L)', gen_random_uuid())) AS unknown_session;
COMMIT;

------------------------------------------------------------------ refresh
SELECT token AS r1, session_id AS r1_sid FROM audiotricks.at_login('uma', 'Passw0rdU') \gset
SELECT token AS r2, session_id AS r2_sid, user_id = :'uma_id' AS same_user FROM audiotricks.at_refresh(:'r1') \gset
SELECT :'same_user' AS same_user, :'r2_sid' <> :'r1_sid' AS new_session;
SELECT family_id = :'r1_sid' AS same_family FROM audiotricks.sessions WHERE id = :'r2_sid';
-- the old token is no longer valid, the new one is
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', :'r1')) AS old_token;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', :'r2')) AS new_token;
-- refresh again: r3 descends from r2
SELECT token AS r3, session_id AS r3_sid FROM audiotricks.at_refresh(:'r2') \gset
-- reusing r1 (already refreshed) is refused and ends the whole family
SELECT pg_temp.try(format('SELECT * FROM audiotricks.at_refresh(%L)', :'r1')) AS reuse;
SELECT pg_temp.wait_until(format(
         $$SELECT count(*) = 1 FROM audiotricks.audit_log WHERE event = 'refresh_reuse' AND user_id = %L$$,
         :'uma_id')) AS reuse_recorded;
-- in force when the refused call returns (no waiting), although that call's
-- transaction (here a subtransaction of pg_temp.try) was rolled back
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', :'r3')) AS r3_after_reuse;
SELECT count(*) AS family_listed FROM audiotricks.revoked_families WHERE family_id = :'r1_sid';
SELECT count(*) AS family_rows_left FROM audiotricks.sessions WHERE family_id = :'r1_sid';
-- the other, unrelated session of uma lives on
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', :'u1')) AS unrelated_session;
-- bad tokens cannot be refreshed
SELECT pg_temp.try('SELECT * FROM audiotricks.at_refresh(NULL)');
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_refresh('garbage')$$);
SELECT audiotricks.at_logout(:'u1') AS u1_out;
SELECT pg_temp.try(format('SELECT * FROM audiotricks.at_refresh(%L)', :'u1')) AS refresh_after_logout;

------------------------------------------------------------------ a logout cannot hide reuse
-- A thief refreshes a stolen token (the victim's copy is now a refreshed
-- token) and then logs the stolen token out, to delete the row that would
-- reveal the reuse.  Logging out a refreshed token is itself reuse: the
-- family ends at once (listed in revoked_families, its sessions deleted)
-- and the victim's copy is refused too.
SELECT token AS f1, session_id AS f1_sid FROM audiotricks.at_login('uma', 'Passw0rdU') \gset
SELECT token AS f2 FROM audiotricks.at_refresh(:'f1') \gset
SELECT audiotricks.at_logout(:'f1') AS logout_refreshed_token;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', :'f2')) AS f2_after_logout_of_f1;
SELECT count(*) AS f_family_rows_left FROM audiotricks.sessions WHERE family_id = :'f1_sid';
SELECT count(*) AS f_family_listed FROM audiotricks.revoked_families WHERE family_id = :'f1_sid';
SELECT pg_temp.try(format('SELECT * FROM audiotricks.at_refresh(%L)', :'f1')) AS victim_presents_f1;
-- the thief's own transaction cannot take the revocation back with it
SELECT token AS g1, session_id AS g1_sid FROM audiotricks.at_login('uma', 'Passw0rdU') \gset
SELECT token AS g2 FROM audiotricks.at_refresh(:'g1') \gset
BEGIN;
SELECT audiotricks.at_logout(:'g1') AS logout_refreshed_in_xact;
ROLLBACK;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', :'g2')) AS g2_after_rollback;
-- the same through at_logout_session with the refreshed session's id
-- (refreshed ids are visible in sessions to their owner)
SELECT token AS h1, session_id AS h1_sid FROM audiotricks.at_login('uma', 'Passw0rdU') \gset
SELECT token AS h2 FROM audiotricks.at_refresh(:'h1') \gset
SET ROLE regress_sec;
BEGIN;
SELECT audiotricks.at_authenticate(:'h2') = :'uma_id' AS thief_authenticated;
SELECT count(*) AS refreshed_row_visible FROM audiotricks.sessions WHERE id = :'h1_sid' AND refreshed_at IS NOT NULL;
SELECT audiotricks.at_logout_session(:'h1_sid') AS logout_refreshed_id;
COMMIT;
RESET ROLE;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', :'h2')) AS h2_after_logout_session;
SELECT count(*) AS h_family_rows_left FROM audiotricks.sessions WHERE family_id = :'h1_sid';
-- a live session is still simply ended by at_logout: no reuse, no revocation
SELECT token AS k1, session_id AS k1_sid FROM audiotricks.at_login('uma', 'Passw0rdU') \gset
SELECT audiotricks.at_logout(:'k1') AS plain_logout;
SELECT count(*) AS k_rows, (SELECT count(*) FROM audiotricks.revoked_families WHERE family_id = :'k1_sid') AS k_listed
  FROM audiotricks.sessions WHERE family_id = :'k1_sid';
-- one refresh_reuse event for each reuse: r1, f1, g1, h1 (the victim's f1
-- came after the revocation: an unknown token)
SELECT pg_temp.wait_until(format(
         $$SELECT count(*) = 4 FROM audiotricks.audit_log WHERE event = 'refresh_reuse' AND user_id = %L$$,
         :'uma_id')) AS every_reuse_recorded;
-- families without sessions left are forgotten by the purge
SELECT count(*) AS listed_before_purge FROM audiotricks.revoked_families;
SELECT audiotricks.at_purge_expired_sessions() >= 0 AS purged;
SELECT count(*) AS listed_after_purge FROM audiotricks.revoked_families;

------------------------------------------------------------------ deactivate and delete
SELECT audiotricks.at_register('wes@example.com', 'wes', 'Passw0rdW') IS NOT NULL AS wes;
SELECT id AS wes_id FROM audiotricks.users WHERE username = 'wes' \gset
SELECT token AS w1 FROM audiotricks.at_login('wes', 'Passw0rdW') \gset
SELECT token AS w2 FROM audiotricks.at_login('wes', 'Passw0rdW') \gset
SET ROLE regress_sec;
SELECT pg_temp.try($$SELECT audiotricks.at_deactivate_account('Passw0rdW')$$) AS without_identity;
BEGIN;
SELECT audiotricks.at_authenticate(:'w1') IS NOT NULL;
SELECT pg_temp.try($$SELECT audiotricks.at_deactivate_account('wrong')$$) AS wrong_password;
SELECT pg_temp.try($$SELECT audiotricks.at_deactivate_account(NULL)$$) AS null_password;
SELECT audiotricks.at_deactivate_account('Passw0rdW');
SELECT audiotricks.at_current_user_id() IS NULL AS identity_ended;
COMMIT;
RESET ROLE;
SELECT is_active FROM audiotricks.users WHERE username = 'wes';
SELECT count(*) AS wes_sessions FROM audiotricks.sessions WHERE user_id = :'wes_id';
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', :'w2')) AS other_token;
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('wes', 'Passw0rdW')$$) AS login_refused;

-- delete: everything of the user goes, their audit events stay without id or address
SELECT audiotricks.at_register('xia@example.com', 'xia', 'Passw0rdX') IS NOT NULL AS xia;
SELECT id AS xia_id FROM audiotricks.users WHERE username = 'xia' \gset
SELECT token AS x1 FROM audiotricks.at_login('xia', 'Passw0rdX') \gset
INSERT INTO audiotricks.audio_history (user_id, title) VALUES (:'xia_id', 'xia talk');
SELECT count(*) AS xia_events_before FROM audiotricks.audit_log WHERE user_id = :'xia_id';
SET ROLE regress_sec;
BEGIN;
SELECT audiotricks.at_authenticate(:'x1') IS NOT NULL;
SELECT event FROM audiotricks.audit_log ORDER BY created_at, id;
SELECT pg_temp.try($$SELECT audiotricks.at_delete_account('wrong')$$) AS wrong_password;
SELECT audiotricks.at_delete_account('Passw0rdX');
COMMIT;
RESET ROLE;
SELECT (SELECT count(*) FROM audiotricks.users WHERE id = :'xia_id') AS users,
       (SELECT count(*) FROM audiotricks.sessions WHERE user_id = :'xia_id') AS sessions,
       (SELECT count(*) FROM audiotricks.user_settings WHERE user_id = :'xia_id') AS settings,
       (SELECT count(*) FROM audiotricks.audio_history WHERE user_id = :'xia_id') AS history,
       (SELECT count(*) FROM audiotricks.audit_log WHERE user_id = :'xia_id') AS events_with_id,
       (SELECT count(*) FROM audiotricks.audit_log WHERE event = 'account_deleted' AND user_id IS NULL) AS deleted_event;

-- holding a token gives no unlimited password guesses: the functions that ask
-- for the password again have their own throttle count for the account,
-- which does not lock the login
SELECT audiotricks.at_register('yan@example.com', 'yan', 'Passw0rdY') IS NOT NULL AS yan;
SELECT token AS y1 FROM audiotricks.at_login('yan', 'Passw0rdY') \gset
SET ROLE regress_sec;
SELECT pg_temp.try(format($$SELECT audiotricks.at_authenticate(%L), audiotricks.at_change_password('guess%s', 'N3wPassword')$$, :'y1', n))
  FROM generate_series(1, 5) n;
SELECT pg_temp.try(format($$SELECT audiotricks.at_authenticate(%L), audiotricks.at_change_password('Passw0rdY', 'N3wPassword')$$, :'y1')) AS right_password_throttled;
SELECT pg_temp.try(format($$SELECT audiotricks.at_authenticate(%L), audiotricks.at_deactivate_account('Passw0rdY')$$, :'y1')) AS deactivate_throttled;
RESET ROLE;
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('yan', 'Passw0rdY')$$) AS login_not_locked;

------------------------------------------------------------------ audit: reading and immutability
SELECT token AS uma_tok FROM audiotricks.at_login('uma', 'Passw0rdU') \gset
SET ROLE regress_sec;
BEGIN;
SELECT audiotricks.at_authenticate(:'uma_tok') IS NOT NULL;
-- uma sees exactly her own events, and none of anyone else's
SELECT count(*) > 0 AS sees_own, count(*) FILTER (WHERE user_id <> :'uma_id' OR user_id IS NULL) AS others
  FROM audiotricks.audit_log;
SELECT event, count(*) FROM audiotricks.audit_log GROUP BY event ORDER BY event;
-- append-only: no insert, update or delete, not even of her own events
SELECT pg_temp.try($$INSERT INTO audiotricks.audit_log (user_id, event) VALUES (audiotricks.at_current_user_id(), 'login')$$);
SELECT pg_temp.try($$UPDATE audiotricks.audit_log SET event = 'logout'$$);
SELECT pg_temp.try($$DELETE FROM audiotricks.audit_log$$);
SELECT pg_temp.try($$SELECT audiotricks.at_purge_audit_log()$$);
COMMIT;
RESET ROLE;

-- every event name in the log, with the users they belong to
SELECT event, count(*) > 0 AS present FROM audiotricks.audit_log GROUP BY event ORDER BY event;
SELECT count(*) AS secrets_in_log FROM audiotricks.audit_log
 WHERE (audit_log.*)::text ~* '(Passw0rd|wrong|eyJhbGci)';

------------------------------------------------------------------ retention
UPDATE audiotricks.audit_log SET created_at = now() - interval '400 days'
 WHERE event IN ('login_failed', 'login_throttled');
SELECT count(*) AS old_events FROM audiotricks.audit_log WHERE created_at < now() - interval '1 year' \gset
SELECT :old_events > 3 AS more_than_one_batch;
SELECT audiotricks.at_purge_audit_log(interval '1 year', 3) = :old_events AS purged_in_batches;
SELECT count(*) AS old_after FROM audiotricks.audit_log WHERE created_at < now() - interval '1 year';
SELECT pg_temp.try($$SELECT audiotricks.at_purge_audit_log(interval '1 year', 0)$$);

DROP ROLE regress_sec;
