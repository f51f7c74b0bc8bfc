-- role: plain_app
BEGIN;
SELECT plainsql.authenticate(:ps_token);
SELECT * FROM plainsql.history_search_definer(:q, 20);
END;
