-- A session's prepared statements always run their generic plan: for statements written so
-- that plan reaches every table by index from the parameters, it is the same at every call
-- and nothing is planned again.
SET plan_cache_mode = force_generic_plan
