-- Traces (issue 17, part 1): the W3C traceparent of the publishEvent span that recorded
-- an event, so that each attempt of each of its deliveries, made minutes later in any
-- worker process, continues that trace and links to it. NULL when tracing was off.
-- A nullable column without a default: adding it rewrites nothing. The roles' rights on
-- events are table-wide (0003) and cover it; nothing but the publish writes it.
ALTER TABLE events ADD COLUMN traceparent text;
