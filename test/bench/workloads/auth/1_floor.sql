-- role: postgres
-- the bare session lookup by token_hash (the hash computed by the client)
SELECT user_id FROM audiotricks.sessions WHERE token_hash = :hash;
