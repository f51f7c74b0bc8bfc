-- Settings: at_get_settings and at_update_settings, and the same through
-- row-level security with plain SELECT and UPDATE (PostgREST's
-- GET/PATCH /user_settings), tested as an application role.
\set VERBOSITY terse
\set ON_ERROR_ROLLBACK on
SET audiotricks.bcrypt_cost = 4;
SELECT audiotricks.at_register('set-a@example.com', 'set_alice', 'Passw0rdA') IS NOT NULL AS alice;
SELECT audiotricks.at_register('set-b@example.com', 'set_bob', 'Passw0rdB') IS NOT NULL AS bob;
SELECT token AS ta FROM audiotricks.at_login('set_alice', 'Passw0rdA') \gset
SELECT token AS tb FROM audiotricks.at_login('set_bob', 'Passw0rdB') \gset
CREATE ROLE regress_settings_app;
GRANT audiotricks_user TO regress_settings_app;
SET ROLE regress_settings_app;

-- without an identity: 42501, and nothing visible
SELECT * FROM audiotricks.at_get_settings();
SELECT * FROM audiotricks.at_update_settings(summary_quality => 'fast');
SELECT count(*) FROM audiotricks.user_settings;

-- the defaults
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT preferred_language, summary_quality, settings_json, updated_at IS NOT NULL AS has_updated_at
  FROM audiotricks.at_get_settings();
CREATE TEMP TABLE before AS SELECT updated_at FROM audiotricks.at_get_settings();
COMMIT;

-- update through the function: NULL leaves a setting as it is
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT preferred_language, summary_quality, settings_json,
       updated_at > (SELECT updated_at FROM before) AS touched
  FROM audiotricks.at_update_settings(summary_quality => 'fast');
SELECT preferred_language, summary_quality, settings_json
  FROM audiotricks.at_update_settings(preferred_language => 'de',
       settings_json => '{"theme": "dark", "autoSave": true,
                          "notifications": {"email": true, "browser": false},
                          "audioDefaults": {"format": "mp3", "quality": "high"},
                          "beta": {"anything": [1, "two", null]}}');
SELECT preferred_language, summary_quality, settings_json->>'theme' AS theme
  FROM audiotricks.at_update_settings();
-- every documented quality is accepted, others are not
SELECT summary_quality FROM audiotricks.at_update_settings(summary_quality => 'detailed');
SELECT summary_quality FROM audiotricks.at_update_settings(summary_quality => 'balanced');
SELECT * FROM audiotricks.at_update_settings(summary_quality => 'ultra');
SELECT * FROM audiotricks.at_update_settings(summary_quality => '');
-- language tags
SELECT preferred_language FROM audiotricks.at_update_settings(preferred_language => 'pt-BR');
SELECT * FROM audiotricks.at_update_settings(preferred_language => 'english!');
SELECT * FROM audiotricks.at_update_settings(preferred_language => 'e');
SELECT * FROM audiotricks.at_update_settings(preferred_language => 'en-US-posix1');
-- settings_json shapes, each error naming the key
SELECT * FROM audiotricks.at_update_settings(settings_json => '[]');
SELECT * FROM audiotricks.at_update_settings(settings_json => '"dark"');
SELECT * FROM audiotricks.at_update_settings(settings_json => '{"theme": 1}');
SELECT * FROM audiotricks.at_update_settings(settings_json => '{"autoSave": "yes"}');
SELECT * FROM audiotricks.at_update_settings(settings_json => '{"notifications": true}');
SELECT * FROM audiotricks.at_update_settings(settings_json => '{"notifications": {"email": "yes"}}');
SELECT * FROM audiotricks.at_update_settings(settings_json => '{"notifications": {"email": true, "browser": null}}');
SELECT * FROM audiotricks.at_update_settings(settings_json => '{"audioDefaults": []}');
SELECT * FROM audiotricks.at_update_settings(settings_json => '{"audioDefaults": {"format": 3}}');
SELECT * FROM audiotricks.at_update_settings(settings_json => '{"audioDefaults": {"quality": false}}');
-- unlisted keys, also inside listed objects, are allowed
SELECT settings_json FROM audiotricks.at_update_settings(
    settings_json => '{"notifications": {"email": false, "sms": "maybe"}, "audioDefaults": {"bitrate": 320}}');
SELECT settings_json FROM audiotricks.at_update_settings(settings_json => '{}');
COMMIT;

-- directly through RLS (PostgREST PATCH /user_settings)
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
UPDATE audiotricks.user_settings SET summary_quality = 'fast', settings_json = '{"theme": "light"}'
RETURNING preferred_language, summary_quality, settings_json;
UPDATE audiotricks.user_settings SET settings_json = '{"autoSave": 1}';
UPDATE audiotricks.user_settings SET summary_quality = 'slow';
UPDATE audiotricks.user_settings SET openai_api_key_encrypted = 'x';
UPDATE audiotricks.user_settings SET user_id = user_id;
SELECT count(*) AS visible FROM audiotricks.user_settings;
COMMIT;

-- bob sees and changes only his own row
BEGIN;
SELECT audiotricks.at_authenticate(:'tb') IS NOT NULL AS authenticated;
SELECT preferred_language, summary_quality, settings_json FROM audiotricks.at_get_settings();
UPDATE audiotricks.user_settings SET summary_quality = 'detailed';
SELECT count(*) AS visible FROM audiotricks.user_settings;
COMMIT;
RESET ROLE;
SELECT u.username, s.preferred_language, s.summary_quality, s.settings_json
  FROM audiotricks.user_settings s JOIN audiotricks.users u ON u.id = s.user_id
 WHERE u.username IN ('set_alice', 'set_bob') ORDER BY 1;

-- the preferred language is the search language of entries that name none
SET ROLE regress_settings_app;
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT preferred_language FROM audiotricks.at_update_settings(preferred_language => 'de');
SELECT audiotricks.at_history_add('Sitzung', transcript => 'Die Besprechungen dauerten lange') IS NOT NULL AS added;
SELECT audiotricks.at_history_add('Reunion', transcript => 'reuniones largas',
                                  processing_options => '{"language": "es"}') IS NOT NULL AS added;
SELECT title, search_config, search_tsv FROM audiotricks.audio_history ORDER BY title;
SELECT title FROM audiotricks.at_history_search('Besprechung');
COMMIT;

-- clean up
DROP TABLE before;
RESET ROLE;
DELETE FROM audiotricks.users WHERE username IN ('set_alice', 'set_bob');
DROP ROLE regress_settings_app;
