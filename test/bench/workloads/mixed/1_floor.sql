-- role: postgres
-- a random one of 1,000 users: check the token, first page, read the API
-- key status (set or not, when), add an entry
\set n random(1, 1000)
BEGIN;
SELECT s.user_id AS uid FROM audiotricks.sessions s
 WHERE s.token_hash = (SELECT at_hash FROM bench.tokens WHERE n = :n) \gset
SELECT * FROM audiotricks.audio_history WHERE user_id = :uid
 ORDER BY created_at DESC, id DESC LIMIT 20;
SELECT openai_api_key_encrypted IS NOT NULL, openai_api_key_set_at,
       elevenlabs_api_key_encrypted IS NOT NULL, elevenlabs_api_key_set_at
  FROM audiotricks.user_settings WHERE user_id = :uid;
INSERT INTO audiotricks.audio_history (user_id, title, audio_url, duration_seconds, transcript, summary)
VALUES (:uid, 'Quick note', 'https://cdn.example.com/audio/note.mp3', 42,
        'a short voice note about the next product review meeting with the team', 'next review meeting');
END;
