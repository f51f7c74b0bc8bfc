-- role: plain_app
SELECT plainsql.authenticate_pgjwt(:ps_token);
