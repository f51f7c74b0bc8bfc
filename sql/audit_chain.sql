-- The audit log's row changes and hash chains: at_audit_row (every INSERT,
-- UPDATE, DELETE on users, user_settings, audio_history),
-- at_verify_audit_chain, at_purge_audit_log's purge records, anonymisation.
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;

SELECT audiotricks.at_register('chain_a@example.com', 'chain_a', 'Passw0rdA') AS ua \gset
SELECT audiotricks.at_register('chain_b@example.com', 'chain_b', 'Passw0rdB') AS ub \gset
SELECT audiotricks.at_register('chain_c@example.com', 'chain_c', 'Passw0rdC') AS uc \gset
SELECT token AS ta FROM audiotricks.at_login('chain_a', 'Passw0rdA') \gset

-- a user's row changes: one event each, with the column names only
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT audiotricks.at_set_api_key('openai', 'sk-chain-secret-1234');
SELECT audiotricks.at_history_add('chain title', transcript => 'the secret transcript text') AS hid \gset
UPDATE audiotricks.audio_history SET transcript = 'another secret text' WHERE id = :'hid';
SELECT audiotricks.at_set_api_key('openai', NULL);
SELECT audiotricks.at_history_delete(:'hid');
COMMIT;

SELECT seq, event, table_name, operation, changed_columns,
       db_role = current_user AS role_recorded,
       (actor_id = :'ua') IS TRUE AS actor_recorded
  FROM audiotricks.audit_log l
 WHERE user_id = :'ua' AND NOT EXISTS (SELECT FROM audiotricks.audit_chain_heads h
                                        WHERE h.chain_id = l.chain_id AND h.detached)
 ORDER BY seq;

-- no value reaches the log: not the key, not the transcript
SELECT count(*) AS leaks FROM audiotricks.audit_log
 WHERE row(audit_log.*)::text ~ '(sk-chain-secret|secret transcript|another secret)';

-- the chains verify
SELECT events > 0 AS has_events, ok, first_bad_id IS NULL AS no_bad, reason
  FROM audiotricks.at_verify_audit_chain(:'ua') ORDER BY chain_id;
SELECT bool_and(ok) AS all_ok FROM audiotricks.at_verify_audit_chain();

-- an event edited by a superuser is reported at that event
SELECT id AS bad_b FROM audiotricks.audit_log WHERE user_id = :'ub' ORDER BY seq LIMIT 1 \gset
UPDATE audiotricks.audit_log SET detail = '{"edited": true}' WHERE id = :'bad_b';
SELECT ok, first_bad_id = :'bad_b' AS at_the_row, reason
  FROM audiotricks.at_verify_audit_chain(:'ub') WHERE NOT ok;
-- and a changed user id or address too
SELECT id AS bad_b2 FROM audiotricks.audit_log WHERE user_id = :'ub' ORDER BY seq DESC LIMIT 1 \gset
UPDATE audiotricks.audit_log SET client_addr = '10.0.0.1' WHERE id = :'bad_b2';
SELECT count(*) AS bad_chains FROM audiotricks.at_verify_audit_chain(:'ub') WHERE NOT ok;

-- a deleted event is reported at the next one (seq gap); the last one by the head
SELECT audiotricks.at_authenticate(token) IS NOT NULL AS authenticated
  FROM audiotricks.at_login('chain_c', 'Passw0rdC');
SELECT id AS gone_c, seq AS gone_seq FROM audiotricks.audit_log
 WHERE user_id = :'uc' ORDER BY seq LIMIT 1 OFFSET 1 \gset
SELECT id AS next_c FROM audiotricks.audit_log l
 WHERE user_id = :'uc' AND seq = :gone_seq + 1
   AND chain_id = (SELECT chain_id FROM audiotricks.audit_log WHERE id = :'gone_c') \gset
DELETE FROM audiotricks.audit_log WHERE id = :'gone_c';
SELECT ok, first_bad_id = :'next_c' AS at_the_next, reason
  FROM audiotricks.at_verify_audit_chain(:'uc') WHERE NOT ok;

-- a row inserted outside any chain is reported
INSERT INTO audiotricks.audit_log (event, chain_id, seq, subject_hash, hash)
VALUES ('login', audiotricks.at_uuid_v7(), 1, '\x00', '\x00');
SELECT reason FROM audiotricks.at_verify_audit_chain() WHERE user_id IS NULL AND NOT ok;
DELETE FROM audiotricks.audit_log WHERE event = 'login' AND user_id IS NULL AND seq = 1
   AND NOT EXISTS (SELECT FROM audiotricks.audit_chain_heads h WHERE h.chain_id = audit_log.chain_id);

-- a deleted account: its events stay, anonymised, and its chain verifies
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT audiotricks.at_delete_account('Passw0rdA');
COMMIT;
SELECT count(*) AS left_with_user FROM audiotricks.audit_log WHERE user_id = :'ua' OR actor_id = :'ua';
SELECT count(*) AS heads_with_user FROM audiotricks.audit_chain_heads WHERE user_id = :'ua';
SELECT count(*) FILTER (WHERE NOT ok) AS bad, count(*) FILTER (WHERE ok AND user_id IS NULL) > 0 AS anonymous_ok
  FROM audiotricks.at_verify_audit_chain()
 WHERE chain_id NOT IN (SELECT chain_id FROM audiotricks.audit_chain_heads WHERE user_id IN (:'ub', :'uc'));

-- retention: whole prefixes go, each chain records it and still verifies
SELECT audiotricks.at_purge_audit_log('1 year') AS nothing_old;
SELECT audiotricks.at_purge_audit_log('-1 hour', 3) > 0 AS purged;
SELECT count(*) = (SELECT count(*) FROM audiotricks.audit_chain_heads) AS one_record_per_chain,
       bool_and(detail ? 'through_seq' AND detail ? 'last_hash' AND detail ? 'from') AS with_range
  FROM audiotricks.audit_log WHERE event = 'audit_purged';
SELECT count(*) FILTER (WHERE NOT ok) AS bad_after_purge FROM audiotricks.at_verify_audit_chain();
-- a purge record edited afterwards no longer anchors its chain
UPDATE audiotricks.audit_log SET detail = jsonb_set(detail, '{through_seq}', '0')
 WHERE event = 'audit_purged' AND user_id = :'ub';
SELECT reason FROM audiotricks.at_verify_audit_chain(:'ub') WHERE NOT ok ORDER BY 1;

-- errors
SELECT audiotricks.at_purge_audit_log('1 day', 0);
SELECT audiotricks.at_purge_audit_log(NULL, 1);

-- who may do what
CREATE ROLE regress_chain_app;
GRANT audiotricks_user TO regress_chain_app;
SET ROLE regress_chain_app;
SELECT * FROM audiotricks.at_verify_audit_chain();
SELECT count(*) FROM audiotricks.audit_chain_heads;
DELETE FROM audiotricks.audit_log;
RESET ROLE;
SELECT has_function_privilege('pg_monitor', 'audiotricks.at_verify_audit_chain(uuid)', 'EXECUTE') AS monitor_may_verify;
DROP ROLE regress_chain_app;
