-- Extends the rebuild lock only while it is still this run's (never another rebuild's).
-- KEYS[1] lock; ARGV[1] run, ARGV[2] lifetime in ms.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
