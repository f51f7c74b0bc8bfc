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

-- no value reaches the log: not the key (nor its ciphertext), not the
-- transcript, not the password hash
SELECT count(*) AS leaks FROM audiotricks.audit_log
 WHERE row(audit_log.*)::text ~ '(sk-chain-secret|secret transcript|another secret|at1\.|\$2[aby]\$)';

-- an application role's direct UPDATE: its role, the actor, the column names
CREATE ROLE regress_chain_writer;
GRANT audiotricks_user TO regress_chain_writer;
SELECT token AS tb FROM audiotricks.at_login('chain_b', 'Passw0rdB') \gset
SET ROLE regress_chain_writer;
BEGIN;
SELECT audiotricks.at_authenticate(:'tb') IS NOT NULL AS authenticated;
UPDATE audiotricks.user_settings SET summary_quality = 'fast';
SELECT event, table_name, operation, changed_columns, db_role, actor_id = :'ub' AS actor_recorded
  FROM audiotricks.audit_log ORDER BY created_at DESC, seq DESC LIMIT 1;
COMMIT;
RESET ROLE;
-- a password change: the hash's column name, never the hash
BEGIN;
SELECT audiotricks.at_authenticate(:'tb') IS NOT NULL AS authenticated;
SELECT audiotricks.at_change_password('Passw0rdB', 'Passw0rdB2');
COMMIT;
SELECT table_name, operation, changed_columns FROM audiotricks.audit_log
 WHERE user_id = :'ub' AND table_name = 'users' ORDER BY seq DESC LIMIT 1;
DROP ROLE regress_chain_writer;

-- the hash as README documents it, recomputed in plain SQL, matches: a
-- chain can be checked outside the database.  Checked on this file's users'
-- chains, the global ones, and one event of every shape in the log (event,
-- table, operation, which fields are NULL); the earlier files' 150,000
-- events would take most of the suite's time under valgrind
CREATE FUNCTION pg_temp.f(b bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN b IS NULL THEN '\xffffffff'::bytea ELSE int4send(length(b)) || b END $$;
CREATE FUNCTION pg_temp.t(s text) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT pg_temp.f(convert_to(s, 'UTF8')) $$;
CREATE FUNCTION pg_temp.event_hash(l audiotricks.audit_log) RETURNS bytea LANGUAGE sql AS $$
SELECT sha256(pg_temp.t('audiotricks audit event v1') || pg_temp.f(l.prev_hash)
  || pg_temp.f(uuid_send(l.id)) || pg_temp.f(uuid_send(l.chain_id)) || pg_temp.f(int8send(l.seq))
  || pg_temp.f(int8send((extract(epoch FROM l.created_at) * 1000000 - 946684800000000)::bigint))
  || pg_temp.t(l.event) || pg_temp.t(l.db_role::text) || pg_temp.t(l.table_name)
  || pg_temp.f(uuid_send(l.row_id)) || pg_temp.t(l.operation)
  || CASE WHEN l.changed_columns IS NULL THEN '\xffffffff'::bytea
          ELSE int4send(cardinality(l.changed_columns))
               || coalesce((SELECT string_agg(pg_temp.t(c), ''::bytea ORDER BY o)
                              FROM unnest(l.changed_columns) WITH ORDINALITY u(c, o)), ''::bytea) END
  || pg_temp.t(l.detail::text) || pg_temp.f(uuid_send(l.session_id)) || pg_temp.f(l.subject_hash)) $$;
SELECT count(*) > 20 AS many, count(*) FILTER (WHERE hash <> pg_temp.event_hash(l)) AS differ
  FROM audiotricks.audit_log l
 WHERE l.user_id IN (:'ua', :'ub', :'uc') OR l.user_id IS NULL
    OR l.id IN (SELECT DISTINCT ON (event, table_name, operation, changed_columns IS NULL,
                                    client_addr IS NULL, session_id IS NULL, actor_id IS NULL,
                                    row_id IS NULL, prev_hash IS NULL) id
                  FROM audiotricks.audit_log
                 ORDER BY event, table_name, operation, changed_columns IS NULL, client_addr IS NULL,
                          session_id IS NULL, actor_id IS NULL, row_id IS NULL, prev_hash IS NULL, id);

-- many events in one transaction, the last ones in a rolled-back
-- savepoint: the chain's head moves to the last event that stays
SELECT audiotricks.at_register('chain_g@example.com', 'chain_g', 'Passw0rdG') AS ug \gset
SELECT token AS tg FROM audiotricks.at_login('chain_g', 'Passw0rdG') \gset
BEGIN;
SELECT audiotricks.at_authenticate(:'tg') IS NOT NULL AS authenticated;
SELECT count(audiotricks.at_history_add('bulk ' || g)) FROM generate_series(1, 50) g;
SAVEPOINT s;
SELECT count(audiotricks.at_history_add('gone ' || g)) FROM generate_series(1, 5) g;
ROLLBACK TO s;
SELECT count(audiotricks.at_history_add('kept')) AS kept;
SAVEPOINT s2;
SELECT count(audiotricks.at_history_add('gone too')) AS gone;
ROLLBACK TO s2;
COMMIT;
SELECT h.seq = (SELECT max(seq) FROM audiotricks.audit_log l WHERE l.chain_id = h.chain_id) AS head_at_last,
       (SELECT count(*) FROM audiotricks.audit_log l WHERE l.chain_id = h.chain_id AND table_name = 'audio_history') AS history_events
  FROM audiotricks.audit_chain_heads h WHERE user_id = :'ug' AND NOT detached;
SELECT ok, reason FROM audiotricks.at_verify_audit_chain(:'ug');

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

-- a forger who recomputes the hash of the event they edit: the next event's
-- link names it; the last event's, the chain head
SELECT audiotricks.at_register('chain_d@example.com', 'chain_d', 'Passw0rdD') AS ud \gset
SELECT audiotricks.at_register('chain_e@example.com', 'chain_e', 'Passw0rdE') AS ue \gset
SELECT id AS next_d FROM audiotricks.audit_log WHERE user_id = :'ud' AND seq = 3 \gset
UPDATE audiotricks.audit_log SET changed_columns = '{user_id}' WHERE user_id = :'ud' AND seq = 2;
UPDATE audiotricks.audit_log l SET hash = pg_temp.event_hash(l) WHERE user_id = :'ud' AND seq = 2;
SELECT ok, first_bad_id = :'next_d' AS at_the_next, reason
  FROM audiotricks.at_verify_audit_chain(:'ud');
SELECT id AS last_e FROM audiotricks.audit_log WHERE user_id = :'ue' ORDER BY seq DESC LIMIT 1 \gset
UPDATE audiotricks.audit_log SET event = 'login' WHERE id = :'last_e';
UPDATE audiotricks.audit_log l SET hash = pg_temp.event_hash(l) WHERE id = :'last_e';
SELECT ok, first_bad_id = :'last_e' AS at_the_row, reason
  FROM audiotricks.at_verify_audit_chain(:'ue');
-- and a renumbered chain (an event deleted, the later ones moved down and
-- rehashed): the first moved event's link names it
SELECT audiotricks.at_register('chain_f@example.com', 'chain_f', 'Passw0rdF') AS uf \gset
SELECT id AS moved_f FROM audiotricks.audit_log WHERE user_id = :'uf' AND seq = 3 \gset
DELETE FROM audiotricks.audit_log WHERE user_id = :'uf' AND seq = 2;
UPDATE audiotricks.audit_log SET seq = 2 WHERE id = :'moved_f';
UPDATE audiotricks.audit_log l SET hash = pg_temp.event_hash(l) WHERE id = :'moved_f';
UPDATE audiotricks.audit_chain_heads h SET seq = 2, hash = l.hash FROM audiotricks.audit_log l
 WHERE l.id = :'moved_f' AND h.chain_id = l.chain_id;
SELECT ok, first_bad_id = :'moved_f' AS at_the_row, reason
  FROM audiotricks.at_verify_audit_chain(:'uf');

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
 WHERE chain_id NOT IN (SELECT chain_id FROM audiotricks.audit_chain_heads WHERE user_id IN (:'ub', :'uc', :'ud', :'ue', :'uf'));

-- retention: whole prefixes go, each chain records it and still verifies
SELECT audiotricks.at_purge_audit_log('1 year') AS nothing_old;
SELECT audiotricks.at_purge_audit_log('-1 hour', 3) > 0 AS purged;
SELECT count(*) = (SELECT count(*) FROM audiotricks.audit_chain_heads) AS one_record_per_chain,
       bool_and(detail ? 'through_seq' AND detail ? 'last_hash' AND detail ? 'from') AS with_range
  FROM audiotricks.audit_log WHERE event = 'audit_purged';
SELECT count(*) FILTER (WHERE NOT ok AND user_id IS DISTINCT FROM :'ue') AS bad_after_purge
  FROM audiotricks.at_verify_audit_chain();
-- chain_e's replaced last event was purged, but its record does not link to
-- the head's hash: the tampering stays on record
SELECT ok, reason FROM audiotricks.at_verify_audit_chain(:'ue');
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
