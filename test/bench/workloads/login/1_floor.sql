-- role: postgres
-- bcrypt alone at the same cost
SELECT public.crypt(:pw, :hash12) = :hash12;
