/* src/extension/audiotricks--0.1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION audiotricks CASCADE" to load this file. \quit

-- Refuse to install unless the library is in shared_preload_libraries: its
-- secret settings are only safe, and its shared state only exists, then.
CREATE FUNCTION audiotricks.at_check_preload() RETURNS void
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_preload';
SELECT audiotricks.at_check_preload();
REVOKE ALL ON FUNCTION audiotricks.at_check_preload() FROM PUBLIC;
COMMENT ON FUNCTION audiotricks.at_check_preload() IS
    'Raises 55000 unless audiotricks is in shared_preload_libraries; run by the install script.';

------------------------------------------------------------------------------
-- Roles
--
-- Two NOLOGIN group roles carry every privilege the application needs; the
-- extension grants nothing to PUBLIC but USAGE on the schema.  Grant them to
-- your own roles (README, "Roles"):
--   audiotricks_anon  register, log in, check and end a token
--   audiotricks_user  everything a signed-in user does (includes anon's)
-- Roles are cluster-wide: DROP EXTENSION leaves them in place.
------------------------------------------------------------------------------
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'audiotricks_anon') THEN
        CREATE ROLE audiotricks_anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'audiotricks_user') THEN
        CREATE ROLE audiotricks_user NOLOGIN;
    END IF;
END
$roles$;

GRANT USAGE ON SCHEMA audiotricks TO audiotricks_anon, audiotricks_user;

------------------------------------------------------------------------------
-- Core functions used by the tables' defaults and policies
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks.at_uuid_v7() RETURNS uuid
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'at_uuid_v7';
COMMENT ON FUNCTION audiotricks.at_uuid_v7() IS
    'A new time-ordered UUID (RFC 9562 version 7), strictly increasing within a backend.';

CREATE FUNCTION audiotricks.at_current_user_id() RETURNS uuid
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'at_current_user_id';
COMMENT ON FUNCTION audiotricks.at_current_user_id() IS
    'The user id of the verified token of this transaction (at_authenticate, else PostgREST''s bearer token in request.headers), or NULL.';

CREATE FUNCTION audiotricks.at_touch_updated_at() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'at_touch_updated_at';
COMMENT ON FUNCTION audiotricks.at_touch_updated_at() IS
    'BEFORE UPDATE trigger: sets updated_at to the transaction timestamp.';
REVOKE ALL ON FUNCTION audiotricks.at_touch_updated_at() FROM PUBLIC;

------------------------------------------------------------------------------
-- Tables
------------------------------------------------------------------------------
CREATE TABLE audiotricks.users (
    id              uuid            NOT NULL DEFAULT audiotricks.at_uuid_v7(),
    email           varchar(255)    NOT NULL,
    username        varchar(100)    NOT NULL,
    password_hash   varchar(255)    NOT NULL,
    created_at      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    last_login_at   timestamptz,
    is_active       boolean         NOT NULL DEFAULT true,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_check
        CHECK (email OPERATOR(pg_catalog.~) '^[^@[:space:][:cntrl:]]+@[^@[:space:][:cntrl:]]+$'),
    CONSTRAINT users_username_check
        CHECK (username OPERATOR(pg_catalog.~) '^[A-Za-z0-9_-]{1,100}$')
);
CREATE UNIQUE INDEX users_email_key ON audiotricks.users (pg_catalog.lower(email));
CREATE UNIQUE INDEX users_username_key ON audiotricks.users (pg_catalog.lower(username));
CREATE TRIGGER users_touch_updated_at BEFORE UPDATE ON audiotricks.users
    FOR EACH ROW EXECUTE FUNCTION audiotricks.at_touch_updated_at();

COMMENT ON TABLE audiotricks.users IS 'Stores user account information.';
COMMENT ON COLUMN audiotricks.users.id IS 'Unique user identifier';
COMMENT ON COLUMN audiotricks.users.email IS 'User''s email address (unique, case-insensitively)';
COMMENT ON COLUMN audiotricks.users.username IS 'Display username (unique, case-insensitively; ASCII letters, digits, _ and -)';
COMMENT ON COLUMN audiotricks.users.password_hash IS 'bcrypt hashed password (never readable by application roles)';
COMMENT ON COLUMN audiotricks.users.created_at IS 'Account creation time';
COMMENT ON COLUMN audiotricks.users.updated_at IS 'Last modification time';
COMMENT ON COLUMN audiotricks.users.last_login_at IS 'Last successful login';
COMMENT ON COLUMN audiotricks.users.is_active IS 'Account active status';

CREATE TABLE audiotricks.sessions (
    id              uuid            NOT NULL DEFAULT audiotricks.at_uuid_v7(),
    user_id         uuid            NOT NULL,
    token_hash      varchar(255)    NOT NULL,
    expires_at      timestamptz     NOT NULL,
    created_at      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash),
    CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES audiotricks.users (id) ON DELETE CASCADE
);
CREATE INDEX sessions_user_id_idx ON audiotricks.sessions (user_id);

COMMENT ON TABLE audiotricks.sessions IS 'Manages active user sessions for JWT authentication.';
COMMENT ON COLUMN audiotricks.sessions.id IS 'Session identifier';
COMMENT ON COLUMN audiotricks.sessions.user_id IS 'Reference to users.id';
COMMENT ON COLUMN audiotricks.sessions.token_hash IS 'SHA256 hash of JWT (hex; never readable by application roles)';
COMMENT ON COLUMN audiotricks.sessions.expires_at IS 'Session expiration time';
COMMENT ON COLUMN audiotricks.sessions.created_at IS 'Session creation time';

CREATE TABLE audiotricks.user_settings (
    user_id                         uuid            NOT NULL,
    openai_api_key_encrypted        text,
    elevenlabs_api_key_encrypted    text,
    preferred_language              varchar(10)     NOT NULL DEFAULT 'en',
    summary_quality                 varchar(20)     NOT NULL DEFAULT 'balanced',
    settings_json                   jsonb           NOT NULL DEFAULT '{}',
    updated_at                      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT user_settings_pkey PRIMARY KEY (user_id),
    CONSTRAINT user_settings_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES audiotricks.users (id) ON DELETE CASCADE
);
CREATE TRIGGER user_settings_touch_updated_at BEFORE UPDATE ON audiotricks.user_settings
    FOR EACH ROW EXECUTE FUNCTION audiotricks.at_touch_updated_at();

COMMENT ON TABLE audiotricks.user_settings IS 'Stores user preferences and encrypted API keys.';
COMMENT ON COLUMN audiotricks.user_settings.user_id IS 'Reference to users.id';
COMMENT ON COLUMN audiotricks.user_settings.openai_api_key_encrypted IS 'Encrypted OpenAI API key (AES-256-GCM; never readable by application roles)';
COMMENT ON COLUMN audiotricks.user_settings.elevenlabs_api_key_encrypted IS 'Encrypted ElevenLabs API key (AES-256-GCM; never readable by application roles)';
COMMENT ON COLUMN audiotricks.user_settings.preferred_language IS 'Language preference';
COMMENT ON COLUMN audiotricks.user_settings.summary_quality IS 'Summary generation quality';
COMMENT ON COLUMN audiotricks.user_settings.settings_json IS 'Additional settings';
COMMENT ON COLUMN audiotricks.user_settings.updated_at IS 'Last update time';

CREATE TABLE audiotricks.audio_history (
    id                  uuid            NOT NULL DEFAULT audiotricks.at_uuid_v7(),
    user_id             uuid            NOT NULL DEFAULT audiotricks.at_current_user_id(),
    title               varchar(500),
    audio_url           text,
    file_size_bytes     bigint,
    duration_seconds    integer,
    transcript          text,
    summary             text,
    key_moments         jsonb,
    processing_options  jsonb,
    created_at          timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT audio_history_pkey PRIMARY KEY (id),
    CONSTRAINT audio_history_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES audiotricks.users (id) ON DELETE CASCADE
);
CREATE INDEX audio_history_user_created_idx
    ON audiotricks.audio_history (user_id, created_at DESC, id DESC);

COMMENT ON TABLE audiotricks.audio_history IS 'Tracks audio processing history for users.';
COMMENT ON COLUMN audiotricks.audio_history.id IS 'History entry identifier';
COMMENT ON COLUMN audiotricks.audio_history.user_id IS 'Reference to users.id (defaults to the current user)';
COMMENT ON COLUMN audiotricks.audio_history.title IS 'Audio title/filename';
COMMENT ON COLUMN audiotricks.audio_history.audio_url IS 'Source audio URL';
COMMENT ON COLUMN audiotricks.audio_history.file_size_bytes IS 'File size in bytes';
COMMENT ON COLUMN audiotricks.audio_history.duration_seconds IS 'Audio duration';
COMMENT ON COLUMN audiotricks.audio_history.transcript IS 'Full transcription';
COMMENT ON COLUMN audiotricks.audio_history.summary IS 'Generated summary';
COMMENT ON COLUMN audiotricks.audio_history.key_moments IS 'Key moments data';
COMMENT ON COLUMN audiotricks.audio_history.processing_options IS 'Processing settings used';
COMMENT ON COLUMN audiotricks.audio_history.created_at IS 'Processing time';

-- pg_dump keeps the users' data (the tables belong to the extension).
SELECT pg_catalog.pg_extension_config_dump('audiotricks.users', '');
SELECT pg_catalog.pg_extension_config_dump('audiotricks.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('audiotricks.user_settings', '');
SELECT pg_catalog.pg_extension_config_dump('audiotricks.audio_history', '');

------------------------------------------------------------------------------
-- Row-level security: enabled and forced everywhere; a row belongs to the
-- user of the verified token.  The identity is wrapped in a scalar subquery
-- so that it is computed once per query (an InitPlan) and the indexes on
-- user_id stay usable.
------------------------------------------------------------------------------
ALTER TABLE audiotricks.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.users FORCE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.user_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.user_settings FORCE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.audio_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.audio_history FORCE ROW LEVEL SECURITY;

CREATE POLICY users_own ON audiotricks.users
    USING (id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()))
    WITH CHECK (id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));
CREATE POLICY sessions_own ON audiotricks.sessions
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));
CREATE POLICY user_settings_own ON audiotricks.user_settings
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));
CREATE POLICY audio_history_own ON audiotricks.audio_history
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));

------------------------------------------------------------------------------
-- Table privileges: least privilege, secret columns never granted.
------------------------------------------------------------------------------
REVOKE ALL ON audiotricks.users, audiotricks.sessions,
    audiotricks.user_settings, audiotricks.audio_history FROM PUBLIC;

GRANT SELECT (id, email, username, created_at, updated_at, last_login_at, is_active)
    ON audiotricks.users TO audiotricks_user;
GRANT SELECT (id, user_id, expires_at, created_at)
    ON audiotricks.sessions TO audiotricks_user;
GRANT SELECT (user_id, preferred_language, summary_quality, settings_json, updated_at)
    ON audiotricks.user_settings TO audiotricks_user;
GRANT UPDATE (preferred_language, summary_quality, settings_json)
    ON audiotricks.user_settings TO audiotricks_user;
GRANT SELECT, DELETE ON audiotricks.audio_history TO audiotricks_user;
GRANT INSERT (user_id, title, audio_url, file_size_bytes, duration_seconds,
              transcript, summary, key_moments, processing_options)
    ON audiotricks.audio_history TO audiotricks_user;
GRANT UPDATE (title, audio_url, file_size_bytes, duration_seconds,
              transcript, summary, key_moments, processing_options)
    ON audiotricks.audio_history TO audiotricks_user;

------------------------------------------------------------------------------
-- Function privileges
------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION audiotricks.at_uuid_v7() FROM PUBLIC;
REVOKE ALL ON FUNCTION audiotricks.at_current_user_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audiotricks.at_uuid_v7() TO audiotricks_user;
GRANT EXECUTE ON FUNCTION audiotricks.at_current_user_id() TO audiotricks_anon, audiotricks_user;

------------------------------------------------------------------------------
-- Accounts, tokens and identity (src/accounts.c, src/identity.c)
--
-- Functions that read or write other users' rows (a login must find the
-- user before anyone is authenticated) are SECURITY DEFINER, owned by the
-- superuser who created the extension, with search_path pinned.  The token
-- check (at_authenticate, at_current_user_id, at_postgrest_pre_request) is
-- not: it runs its single fully qualified session lookup as the extension
-- owner internally, which keeps the hot path free of a GUC save/restore.
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks.at_register(email text, username text, password text)
    RETURNS uuid
    LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_register';
COMMENT ON FUNCTION audiotricks.at_register(text, text, text) IS
    'Validates and creates a user (bcrypt at audiotricks.bcrypt_cost) and their user_settings row; returns the user id. Called by anonymous clients.';

CREATE FUNCTION audiotricks.at_login(login text, password text)
    RETURNS TABLE(token text, user_id uuid, session_id uuid, expires_at timestamptz)
    LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    ROWS 1
    AS 'MODULE_PATHNAME', 'at_login';
COMMENT ON FUNCTION audiotricks.at_login(text, text) IS
    'Checks an email or username and password; issues an HS256 session token and records its SHA-256 in sessions. Called by anonymous clients.';

CREATE FUNCTION audiotricks.at_authenticate(token text)
    RETURNS uuid
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'at_authenticate';
COMMENT ON FUNCTION audiotricks.at_authenticate(text) IS
    'Verifies a session token (signature, expiry, live session, active user) and makes its user the identity of this transaction; returns the user id.';

CREATE FUNCTION audiotricks.at_logout(token text DEFAULT NULL)
    RETURNS boolean
    LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_logout';
COMMENT ON FUNCTION audiotricks.at_logout(text) IS
    'Ends the given token''s session, or with no argument the current one; false when there was no live session.';

CREATE FUNCTION audiotricks.at_logout_all()
    RETURNS integer
    LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_logout_all';
COMMENT ON FUNCTION audiotricks.at_logout_all() IS
    'Ends every session of the current user; returns how many.';

CREATE FUNCTION audiotricks.at_change_password(current_password text, new_password text)
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_change_password';
COMMENT ON FUNCTION audiotricks.at_change_password(text, text) IS
    'Checks the current password, stores a new bcrypt hash, and ends the user''s other sessions.';

CREATE FUNCTION audiotricks.at_purge_expired_sessions()
    RETURNS integer
    LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_purge_expired_sessions';
COMMENT ON FUNCTION audiotricks.at_purge_expired_sessions() IS
    'Deletes expired sessions and returns how many (schedule it with pg_cron). Not executable by application roles.';

CREATE FUNCTION audiotricks.at_postgrest_pre_request()
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'at_postgrest_pre_request';
COMMENT ON FUNCTION audiotricks.at_postgrest_pre_request() IS
    'PostgREST db-pre-request hook: raises 28000 when the request''s bearer token is bad, expired or revoked.';

REVOKE ALL ON FUNCTION
    audiotricks.at_register(text, text, text),
    audiotricks.at_login(text, text),
    audiotricks.at_authenticate(text),
    audiotricks.at_logout(text),
    audiotricks.at_logout_all(),
    audiotricks.at_change_password(text, text),
    audiotricks.at_purge_expired_sessions(),
    audiotricks.at_postgrest_pre_request()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    audiotricks.at_register(text, text, text),
    audiotricks.at_login(text, text),
    audiotricks.at_authenticate(text),
    audiotricks.at_logout(text),
    audiotricks.at_postgrest_pre_request()
    TO audiotricks_anon, audiotricks_user;
GRANT EXECUTE ON FUNCTION
    audiotricks.at_logout_all(),
    audiotricks.at_change_password(text, text)
    TO audiotricks_user;

------------------------------------------------------------------------------
-- Encrypted API keys (src/keys.c)
--
-- AES-256-GCM under master keys read from audiotricks.key_file (README,
-- "Encrypted API keys").  Who may call what:
--   at_set_api_key, at_get_api_key  audiotricks_user: only the caller's own
--       keys, bound to user and provider; SECURITY DEFINER because the
--       encrypted columns are granted to no application role.
--   at_encrypt_key, at_decrypt_key  superusers only (granted to nobody): the
--       raw pair decrypts anything sealed with it, so an application role must
--       not hold it.  Values of at_set_api_key never open here anyway (another
--       domain in the associated data).
--   at_rotate_api_keys              superusers only (operations, after adding
--       a new current key): SECURITY DEFINER so it can be granted to an
--       operations role that must see every row.
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks.at_encrypt_key(plaintext text, context text DEFAULT '')
    RETURNS text
    LANGUAGE c VOLATILE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'at_encrypt_key';
COMMENT ON FUNCTION audiotricks.at_encrypt_key(text, text) IS
    'AES-256-GCM of plaintext under the current master key with a fresh nonce; context is bound as associated data. Returns at1.<key id>.<fingerprint>.<nonce>.<ciphertext>. Superusers only.';

-- STABLE: the same value within a statement (the key file is looked at again
-- only between statements); PostgREST also serves STABLE functions over GET.
CREATE FUNCTION audiotricks.at_decrypt_key(ciphertext text, context text DEFAULT '')
    RETURNS text
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'at_decrypt_key';
COMMENT ON FUNCTION audiotricks.at_decrypt_key(text, text) IS
    'Inverse of at_encrypt_key with the same context; fails (22P02, 55000, 22000) on a malformed value, an unknown or different key, a wrong context or tampering. Superusers only.';

CREATE FUNCTION audiotricks.at_set_api_key(provider text, api_key text)
    RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_set_api_key';
COMMENT ON FUNCTION audiotricks.at_set_api_key(text, text) IS
    'Stores the current user''s API key for provider (openai or elevenlabs), encrypted and bound to user and provider; NULL clears it. Called by signed-in users.';

CREATE FUNCTION audiotricks.at_get_api_key(provider text)
    RETURNS text
    LANGUAGE c STABLE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_get_api_key';
COMMENT ON FUNCTION audiotricks.at_get_api_key(text) IS
    'The current user''s plaintext API key for provider (openai or elevenlabs), or NULL. Called by signed-in users.';

CREATE FUNCTION audiotricks.at_rotate_api_keys(batch_size integer DEFAULT 1000)
    RETURNS TABLE(rotated bigint, remaining bigint)
    LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    ROWS 1
    AS 'MODULE_PATHNAME', 'at_rotate_api_keys';
COMMENT ON FUNCTION audiotricks.at_rotate_api_keys(integer) IS
    'Re-encrypts the stored API keys of up to batch_size rows under the current master key (skipping locked rows); returns values rotated and values still under other keys. Not executable by application roles.';

REVOKE ALL ON FUNCTION
    audiotricks.at_encrypt_key(text, text),
    audiotricks.at_decrypt_key(text, text),
    audiotricks.at_set_api_key(text, text),
    audiotricks.at_get_api_key(text),
    audiotricks.at_rotate_api_keys(integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    audiotricks.at_set_api_key(text, text),
    audiotricks.at_get_api_key(text)
    TO audiotricks_user;
