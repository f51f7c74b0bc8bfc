-- role: plain_app
SELECT plainsql.authenticate(:ps_token);
