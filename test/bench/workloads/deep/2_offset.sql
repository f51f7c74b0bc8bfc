-- role: plain_app
BEGIN;
SELECT plainsql.authenticate(:ps_token);
SELECT * FROM plainsql.history_page_offset(20, :depth);
END;
