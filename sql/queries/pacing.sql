-- reserve_delivery_slot --
-- Take the next slot of a rate-limited subscription, in one statement (migration 0017):
-- the first free moment or now, whichever is later, and move the first free moment on by
-- the slots' spacing. A rate other than the one the slots were spaced for starts afresh
-- from now. The row lock of the upsert orders concurrent reservations: no two get one slot.
-- "Now" is the clock's, not the statement's start: a reservation that waited for the
-- lock must not take a slot already past.
INSERT INTO subscription_pacing AS p (subscription_id, per_second, next_slot)
VALUES (%(subscription_id)s, %(per_second)s, clock_timestamp() + %(spacing)s::interval)
ON CONFLICT (subscription_id) DO UPDATE SET
    per_second = excluded.per_second,
    next_slot = CASE WHEN p.per_second = excluded.per_second
                     THEN greatest(p.next_slot + %(spacing)s::interval, excluded.next_slot)
                     ELSE excluded.next_slot END
RETURNING next_slot - %(spacing)s::interval AS slot, clock_timestamp() AS now;

-- restart_pacing --
-- Forget a subscription's pacing (its rate changed, migration 0018): the next attempt
-- reserves from now at the new rate, behind no slot reserved at the old one.
DELETE FROM subscription_pacing WHERE subscription_id = %(subscription_id)s;
