-- Index entries that every request writes and nothing reads well enough
-- to pay for them (measured, docs/PERFORMANCE.md, change 13):
--
-- river_job_kind (River's, on kind alone) takes an entry for every row
-- version of every job: a reauth_device job is written three times
-- (inserted, fetched, finalized) and its reminder once, four entries a
-- request. No fetch, insert, completion or maintenance statement of River's
-- reads it; the service's looks by kind go through its partial indexes
-- (river_job_reauth_device, river_job_reauth_notify) or by state
-- (river_job_prioritized_fetching_index). River UI's kind filter, and a
-- count by kind alone, read river_job, which River keeps to a day of
-- finished jobs, instead. River's reindexer is told (worker.ClientConfig).
--
-- device_org_user (org_id, user_id) is the prefix of device_org_synced
-- (org_id, user_id, synced_at), which answers every look it did.
DROP INDEX IF EXISTS river_job_kind;
DROP INDEX device_org_user;

-- river_job_reauth_notify_user finds a user's pending grouped message
-- (store.PendingUserMessage, by args ->> 'user_id'); a session's own
-- messages and reminders have no user_id, yet each took an entry (NULL)
-- while waiting. Now only the jobs with one do: the look's
-- args ->> 'user_id' = $2 implies the predicate.
DROP INDEX river_job_reauth_notify_user;
CREATE INDEX river_job_reauth_notify_user ON river_job ((args ->> 'user_id'))
    WHERE kind = 'reauth_notify' AND state IN ('scheduled', 'available', 'retryable')
        AND (args ->> 'user_id') IS NOT NULL;
