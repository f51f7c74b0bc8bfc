-- role: plain_app
BEGIN;
SELECT plainsql.authenticate(:ps_token);
SELECT * FROM plainsql.history_page(20, :ca, :cid);
END;
