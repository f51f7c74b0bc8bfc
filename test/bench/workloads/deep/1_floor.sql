-- role: postgres
BEGIN;
SELECT user_id FROM audiotricks.sessions WHERE token_hash = :hash;
SELECT * FROM audiotricks.audio_history WHERE user_id = :uid
   AND (created_at, id) < (:ca, :cid)
 ORDER BY created_at DESC, id DESC LIMIT 20;
END;
