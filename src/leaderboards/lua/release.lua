-- Deletes the rebuild lock only if it is still this run's (never another rebuild's).
-- KEYS[1] lock; ARGV[1] run.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
