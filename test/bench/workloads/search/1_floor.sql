-- role: postgres
-- the query at_history_search runs, with the tsquery it builds (:tsq)
-- requires: audiotricks.at_history_search(text,integer,text)
BEGIN;
SELECT user_id FROM audiotricks.sessions WHERE token_hash = :hash;
SELECT h.* FROM audiotricks.audio_history h
 WHERE h.user_id = :uid AND h.search_tsv @@ CAST(:tsq AS tsquery)
 ORDER BY ts_rank(h.search_tsv, CAST(:tsq AS tsquery)) DESC, h.created_at DESC, h.id DESC LIMIT 20;
END;
