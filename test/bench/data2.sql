-- test/bench/data2.sql — the benchmark's data set, part 2 (after the history
-- is loaded): the plain-SQL schema's indexes (built after the bulk load),
-- trigger, policies and grants; the roles; session tokens for both implementations;
-- API keys; the cursors the workloads use.
\set ON_ERROR_STOP 1

CREATE UNIQUE INDEX users_email_key ON plainsql.users (lower(email));
CREATE UNIQUE INDEX users_username_key ON plainsql.users (lower(username));
CREATE INDEX sessions_user_id_idx ON plainsql.sessions (user_id);
CREATE INDEX audio_history_user_created_idx ON plainsql.audio_history (user_id, created_at DESC, id DESC);
CREATE TRIGGER audio_history_tsv BEFORE INSERT OR UPDATE OF title, summary, transcript
    ON plainsql.audio_history FOR EACH ROW EXECUTE FUNCTION plainsql.history_tsv();

ALTER TABLE plainsql.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE plainsql.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE plainsql.user_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE plainsql.audio_history ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_own ON plainsql.users
    USING (id = (SELECT plainsql.current_user_id()));
CREATE POLICY sessions_own ON plainsql.sessions
    USING (user_id = (SELECT plainsql.current_user_id()));
CREATE POLICY user_settings_own ON plainsql.user_settings
    USING (user_id = (SELECT plainsql.current_user_id()));
CREATE POLICY audio_history_own ON plainsql.audio_history
    USING (user_id = (SELECT plainsql.current_user_id()));

-- roles: the application logs in as bench_app (audiotricks) or plain_app
-- (the competitor); the floor runs as the superuser
CREATE ROLE bench_app LOGIN;
GRANT audiotricks_user TO bench_app;
CREATE ROLE plain_app LOGIN;
GRANT USAGE ON SCHEMA plainsql TO plain_app;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA plainsql FROM PUBLIC;
GRANT EXECUTE ON FUNCTION plainsql.current_user_id(), plainsql.authenticate(text),
    plainsql.authenticate_pgjwt(text), plainsql.login(text, text),
    plainsql.history_add(text, text, bigint, integer, text, text, jsonb, jsonb),
    plainsql.history_page_offset(integer, integer),
    plainsql.history_page(integer, timestamptz, uuid),
    plainsql.history_search(text, integer), plainsql.history_search_definer(text, integer),
    plainsql.set_api_key(text, text), plainsql.get_api_key(text), plainsql.api_key_status(),
    plainsql.history_tsv(), plainsql.url_encode(bytea), plainsql.url_decode(text),
    plainsql.algorithm_sign(text, text, text), plainsql.sign(json, text, text),
    plainsql.verify(text, text, text)
    TO plain_app;
GRANT SELECT (id, email, username, created_at, updated_at, last_login_at, is_active) ON plainsql.users TO plain_app;
GRANT SELECT (id, user_id, expires_at, created_at) ON plainsql.sessions TO plain_app;
GRANT SELECT, UPDATE ON plainsql.user_settings TO plain_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON plainsql.audio_history TO plain_app;
GRANT USAGE ON SCHEMA bench TO bench_app, plain_app;

-- session tokens: the heavy and scaling users, and a pool of 1,000 light
-- users (more than audiotricks' 64-entry per-backend token cache holds).
-- Logging in at cost 12 takes ~0.25 s, so these users log in once with a
-- cost-4 hash and then get the cost-12 hash back.
CREATE TABLE bench.tokens (
    n int PRIMARY KEY,          -- 0 = heavy, 1..1000 = pool, 1001.. = scaling users
    username text NOT NULL,
    user_id uuid NOT NULL,
    at_token text, at_hash text,
    ps_token text, ps_hash text);
INSERT INTO bench.tokens (n, username, user_id)
SELECT 0, username, id FROM audiotricks.users WHERE username = 'heavy'
UNION ALL
SELECT row_number() OVER (ORDER BY username), username, id FROM audiotricks.users
 WHERE username BETWEEN 'user00002' AND 'user01001'
UNION ALL
SELECT 1000 + row_number() OVER (ORDER BY username), username, id FROM audiotricks.users
 WHERE username LIKE 'scale%';
UPDATE audiotricks.users SET password_hash = (SELECT value FROM bench.params WHERE name = 'hash4')
 WHERE id IN (SELECT user_id FROM bench.tokens);
UPDATE plainsql.users SET password_hash = (SELECT value FROM bench.params WHERE name = 'hash4')
 WHERE id IN (SELECT user_id FROM bench.tokens);
SET audiotricks.bcrypt_cost = 4;
UPDATE bench.tokens t SET at_token = l.token
  FROM (SELECT t2.n, (audiotricks.at_login(t2.username, (SELECT value FROM bench.params WHERE name = 'password'))).token
          FROM bench.tokens t2) l
 WHERE l.n = t.n;
UPDATE bench.tokens t SET ps_token = l.token
  FROM (SELECT t2.n, (plainsql.login(t2.username, (SELECT value FROM bench.params WHERE name = 'password'))).token
          FROM bench.tokens t2) l
 WHERE l.n = t.n;
RESET audiotricks.bcrypt_cost;
UPDATE bench.tokens SET at_hash = encode(public.digest(at_token, 'sha256'), 'hex'),
                        ps_hash = encode(public.digest(ps_token, 'sha256'), 'hex');
UPDATE audiotricks.users SET password_hash = (SELECT value FROM bench.params WHERE name = 'hash12')
 WHERE id IN (SELECT user_id FROM bench.tokens);
UPDATE plainsql.users SET password_hash = (SELECT value FROM bench.params WHERE name = 'hash12')
 WHERE id IN (SELECT user_id FROM bench.tokens);
GRANT SELECT (n, username, user_id, at_token) ON bench.tokens TO bench_app;
GRANT SELECT (n, username, user_id, ps_token) ON bench.tokens TO plain_app;

-- every pool user has an OpenAI key stored (the mixed workload reads it)
DO $$
DECLARE t record;
BEGIN
    IF to_regprocedure('audiotricks.at_set_api_key(text,text)') IS NOT NULL THEN
        FOR t IN SELECT * FROM bench.tokens LOOP
            PERFORM audiotricks.at_authenticate(t.at_token);
            EXECUTE 'SELECT audiotricks.at_set_api_key($1, $2)' USING 'openai', 'sk-bench-' || md5(t.username);
        END LOOP;
    END IF;
    FOR t IN SELECT * FROM bench.tokens LOOP
        PERFORM plainsql.authenticate(t.ps_token);
        PERFORM plainsql.set_api_key('openai', 'sk-bench-' || md5(t.username));
    END LOOP;
END
$$;

-- cursors: the (created_at, id) of entry 100,000 of the heavy user, i.e. the
-- keyset cursor of the page that OFFSET 100000 returns
INSERT INTO bench.params
SELECT 'deep_created_at', created_at::text FROM (
    SELECT created_at, id FROM audiotricks.audio_history
     WHERE user_id = (SELECT user_id FROM bench.tokens WHERE n = 0)
     ORDER BY created_at DESC, id DESC OFFSET 99999 LIMIT 1) s
UNION ALL
SELECT 'deep_id', id::text FROM (
    SELECT created_at, id FROM audiotricks.audio_history
     WHERE user_id = (SELECT user_id FROM bench.tokens WHERE n = 0)
     ORDER BY created_at DESC, id DESC OFFSET 99999 LIMIT 1) s;
