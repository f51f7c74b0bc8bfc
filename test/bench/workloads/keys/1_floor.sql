-- role: postgres
-- the same statements storing the key in clear
BEGIN;
SELECT user_id FROM audiotricks.sessions WHERE token_hash = :hash;
UPDATE audiotricks.user_settings SET elevenlabs_api_key_encrypted = :apikey WHERE user_id = :uid;
SELECT elevenlabs_api_key_encrypted FROM audiotricks.user_settings WHERE user_id = :uid;
END;
